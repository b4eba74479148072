"""Every storage result has a size bound, and a file or diff of any size can be read whole by paging."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.kit.settings import Settings
from tests.support import call, memory_client

pytestmark = pytest.mark.anyio

CAP = Settings.model_fields["storage_max_read_chars"].default
DIFF_CAP = Settings.model_fields["storage_max_diff_chars"].default
BIG = "".join(f"line {n}: é ✓\n" for n in range(3 * CAP // 12))  # multi-byte characters, over two caps


async def _pages(client: Client, tool: str, arguments: dict[str, Any]) -> list[Any]:
    """Every page of a paged result, following next_offset from 0 to the end."""
    pages, offset = [], 0
    while offset is not None:
        pages.append(await call(client, tool, {**arguments, "offset": offset}))
        offset = pages[-1]["next_offset"]
    return pages


async def test_read_file_returns_at_most_the_cap_and_pages_through_the_whole_file(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        saved = await call(alice, "save", {"files": {"big.py": BIG}, "message": "big"})
        pages = await _pages(alice, "read_file", {"snapshot": saved["id"], "path": "big.py"})
        assert len(pages) > 2 and all(len(page["content"]) <= CAP for page in pages)
        assert "".join(page["content"] for page in pages) == BIG
        assert f"offset={pages[0]['next_offset']}" in pages[0]["more"] and pages[-1]["more"] is None
        assert pages[0]["total_chars"] == len(BIG) and pages[0]["size"] == len(BIG.encode())
        small = await call(alice, "read_file", {"snapshot": saved["id"], "path": "big.py", "offset": 12, "limit": 5})
        assert small["content"] == BIG[12:17]


async def test_diff_is_bounded_and_pages_through_the_whole_diff(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        one = await call(alice, "save", {"files": {"m.py": "a\n"}, "message": "one"})
        two = await call(alice, "save", {"files": {"m.py": BIG}, "message": "two"})
        pages = await _pages(alice, "diff", {"from_snapshot": one["id"], "to_snapshot": two["id"]})
    git_diff = ["git", "--git-dir", str(data_dir / "storage.git"), "diff", "--no-color", one["id"], two["id"]]
    whole = subprocess.run(git_diff, capture_output=True, check=True).stdout.decode()
    assert len(pages) > 2 and all(len(page["diff"]) <= DIFF_CAP for page in pages)
    assert "".join(page["diff"] for page in pages) == whole
    assert pages[0]["truncated"] and not pages[-1]["truncated"]


async def test_snapshot_lists_are_bounded_and_page_with_offset(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        for number in range(5):
            await call(alice, "save", {"files": {"a.py": str(number)}, "message": f"save {number}"})
        too_many = await alice.call_tool("list_snapshots", {"limit": 101})
        assert too_many.is_error and "limit" in too_many.content[0].text  # type: ignore[union-attr]
        first = (await call(alice, "list_snapshots", {"limit": 3}))["snapshots"]
        rest = (await call(alice, "list_snapshots", {"limit": 3, "offset": 3}))["snapshots"]
        assert [s["message"] for s in first + rest] == [f"save {n}" for n in range(4, -1, -1)]
        older = (await call(alice, "log", {"snapshot": first[0]["id"], "offset": 4}))["snapshots"]
        assert [s["message"] for s in older] == ["save 0"]
