"""What a submission may hold and claim: its own code (or code it credits through storage), and
no hidden test inputs or labelled validation inputs. Refusals happen at submit, before any run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from servers.pgr.smuggling import TEST_LIMIT, find_smuggled
from servers.pgr.testbed import TaskBench
from servers.sandbox.config import PROJECT_ROOT
from tests.pgr.support import error_text, pgr_client, save, submit
from tests.support import SECRET_TASKS, W2S_CACHE

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(1200)]  # the first test may prepare a cold cache

METHOD = "from servers.w2s.methods.plain_ce import plain_ce\n\n\ndef method(inp):\n    return plain_ce(inp)\n"
RESTYLED = (
    "# my own work, honest\nfrom servers.w2s.methods.plain_ce import plain_ce\n"
    "def method(inp):  # mine\n    return plain_ce(inp)\n"
)


def _bench() -> TaskBench:
    return TaskBench(None, SECRET_TASKS, W2S_CACHE, 1, b"test")


async def test_a_verbatim_copy_is_refused_and_a_credited_one_is_recorded(data_dir: Path) -> None:
    original = await save(data_dir, METHOD, "alice")
    copied = await save(data_dir, RESTYLED, "bob", path="mine.py")
    credited = await save(data_dir, RESTYLED, "carol", based_on=original)  # alice's files, restyled
    async with pgr_client(data_dir, "alice") as alice:
        first = await submit(alice, original)
    async with pgr_client(data_dir, "bob") as bob:
        refused = await bob.call_tool("submit", {"snapshot": copied, "entry_point": "mine.py:method"})
        assert f"exactly the code of alice's submission {first['id']}" in error_text(refused)
        assert "based_on" in error_text(refused)
    async with pgr_client(data_dir, "carol") as carol:
        accepted = await submit(carol, credited)
        board_row = (await carol.call_tool("submission", {"submission_id": accepted["id"]})).structured_content
    assert accepted["same_code_as"] == first["id"]
    assert original in accepted["derived_from"] and board_row["derived_from"] == accepted["derived_from"]


async def test_a_snapshot_with_hidden_test_inputs_or_labelled_validation_inputs_is_refused(data_dir: Path) -> None:
    bench = await anyio.to_thread.run_sync(_bench)
    tests = sorted(bench.test_texts()["wordnet-living"])[: TEST_LIMIT + 10]
    validation = sorted(bench.validation_texts()["negation"])[: TEST_LIMIT + 10]
    word_list = "ANIMALS = " + repr(tests) + "\n" + METHOD
    labelled = "".join(f"{text!r}: 1,\n" for text in validation) + METHOD
    async with pgr_client(data_dir) as client:
        for code, what in ((word_list, "hidden test inputs of task wordnet-living"),
                           (labelled, "validation inputs paired with labels of task negation")):  # fmt: skip
            refused = await client.call_tool(
                "submit", {"snapshot": await save(data_dir, code), "entry_point": "method.py:method"}
            )
            message = error_text(refused)
            assert what in message and "this used a submission" in message
            assert not any(text in message for text in tests)  # the refusal names no hidden text
        budget = (await client.call_tool("task_info", {})).structured_content["budget"]
    assert budget["submissions_left"] == budget["submissions_per_hour"] - 2


def test_the_projects_own_source_is_far_from_the_smuggling_limits() -> None:
    bench = _bench()
    files = {
        str(path): path.read_bytes()
        for folder in ("servers", "client", "tests", "bench", "scripts", "docs")
        for path in (PROJECT_ROOT / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".md", ".toml", ".json", ".txt")
    }
    files[str(PROJECT_ROOT / "README.md")] = (PROJECT_ROOT / "README.md").read_bytes()
    assert find_smuggled(files, bench.test_texts(), bench.validation_texts()) == []


def _strings(value: Any) -> Iterator[str]:
    """Every string value in parsed JSON, however deep."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def test_the_secret_task_is_named_nowhere_an_agent_can_look(data_dir: Path) -> None:
    async with pgr_client(data_dir) as client:
        info = (await client.call_tool("task_info", {})).structured_content
        resources = [r.uri for r in (await client.list_resources()).resources]
    assert info["secret_tasks"] == 2 and "secret" not in [t["name"] for t in info["tasks"]]
    public = data_dir / "public" / "tasks"
    assert sorted(p.name for p in public.iterdir()) == sorted(t["name"] for t in info["tasks"])
    secret_texts = {text for task in _bench().secret.values() for text in task.texts}
    # every string value shown (not the keys: a secret lemma may be "train", a split's name)
    shown = {value for p in public.rglob("*.json") for value in _strings(json.loads(p.read_text()))}
    assert not secret_texts & (shown | set(map(str, resources)))
