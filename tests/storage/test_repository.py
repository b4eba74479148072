"""Snapshots live in a real git repository: stock git clones it, each agent writes only its branch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from servers.storage.store import open_repository
from tests.support import make_settings, memory_client

pytestmark = pytest.mark.anyio


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


async def test_stock_git_clones_the_repository_and_reads_each_agents_branch(data_dir: Path, tmp_path: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        saved = await alice.call_tool("save", {"files": {"method.py": "print('hi')\n"}, "message": "first method"})
    snapshot = saved.structured_content["id"]
    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(data_dir / "storage.git"), str(clone))
    _git("checkout", "--quiet", "alice", cwd=clone)
    assert (clone / "method.py").read_text() == "print('hi')\n"
    assert _git("log", "-1", "--format=%H %an %s", cwd=clone).split() == [snapshot, "alice", "first", "method"]


async def test_building_on_another_agents_snapshot_writes_only_your_own_branch(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice, memory_client("storage", data_dir, "bob") as bob:
        first = (
            await alice.call_tool("save", {"files": {"a.py": "1", "b.py": "2"}, "message": "alice"})
        ).structured_content
        alice_head = _git("--git-dir", str(data_dir / "storage.git"), "rev-parse", "refs/heads/alice").strip()
        built = await bob.call_tool(
            "save",
            {"files": {"a.py": "changed"}, "message": "bob builds", "based_on": first["id"], "delete": ["b.py"]},
        )
        result = built.structured_content
        assert result["author"] == "bob" and result["based_on"] == first["id"]
        assert [f["path"] for f in result["files"]] == ["a.py"]
        assert _git("--git-dir", str(data_dir / "storage.git"), "rev-parse", "refs/heads/alice").strip() == alice_head
        history = await bob.call_tool("log", {"snapshot": result["id"]})
        assert [s["author"] for s in history.structured_content["snapshots"]] == ["bob", "alice"]
        mine = await bob.call_tool("list_snapshots", {"author": "bob"})
        assert [s["id"] for s in mine.structured_content["snapshots"]] == [result["id"]]


async def test_a_snapshot_without_based_on_holds_exactly_its_files(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        await alice.call_tool("save", {"files": {"old.py": "1"}, "message": "one"})
        second = await alice.call_tool("save", {"files": {"new.py": "2"}, "message": "two"})
        files = [entry["path"] for entry in second.structured_content["files"]]
        assert files == ["new.py"]
        assert len(second.structured_content["parents"]) == 1  # the branch stays linear


async def test_diff_shows_a_unified_diff_and_can_be_narrowed_to_one_file(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        one = (
            await alice.call_tool("save", {"files": {"m.py": "a = 1\n", "n.py": "x"}, "message": "one"})
        ).structured_content
        two = (
            await alice.call_tool("save", {"files": {"m.py": "a = 2\n"}, "message": "two", "based_on": one["id"]})
        ).structured_content
        diff = (
            await alice.call_tool("diff", {"from_snapshot": one["id"], "to_snapshot": two["id"], "path": "m.py"})
        ).structured_content
        assert diff["files_changed"] == ["m.py"]
        assert "-a = 1\n+a = 2\n" in diff["diff"] and not diff["truncated"]


async def test_servers_starting_together_each_find_one_whole_repository(data_dir: Path) -> None:
    """Storage, sandbox and pgr open the repository at the same moment under `aar run` (it once failed:
    two `git init`s of one folder, "File exists")."""
    for attempt in range(8):  # the race is narrow: several fresh starts
        path = data_dir / f"round-{attempt}" / "storage.git"
        async with anyio.create_task_group() as tasks:
            for _ in range(8):
                tasks.start_soon(open_repository, make_settings(path.parent))
        assert sorted(p.name for p in path.parent.iterdir()) == ["storage.git"]  # no scratch folder left
    assert _git("--git-dir", str(path), "config", "core.fsync").strip() == "committed"
    async with memory_client("storage", path.parent, "alice") as alice:
        saved = await alice.call_tool("save", {"files": {"m.py": "1"}, "message": "works"})
    assert not saved.is_error, saved.content
