"""The submission queue: persisted across a kill, served by agent in turn, not held by a method running to its limit."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import anyio
import pytest
from mcp import Client

from servers.sandbox.cgroups import CPU_SHARES, CPU_WEIGHT, CgroupRoot
from servers.storage.store import open_repository
from servers.w2s.tasks import list_tasks
from tests.support import HttpServer, make_settings, pgr_ready

pytestmark = pytest.mark.anyio

SLOW_START = """\
import time
from servers.w2s.methods.plain_ce import plain_ce

def method(inp):
    time.sleep(1)
    return plain_ce(inp)
"""


NEVER_ENDS = """\
import time

def method(inp):
    time.sleep(10**6)
"""

BURNS_CPU = """\
def method(inp):
    while True:
        pass
"""


def _states(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(data_dir / "pgr.sqlite") as connection:
        return dict(connection.execute("SELECT id, state FROM submissions").fetchall())


def _one_task(data_dir: Path, one_public_task: Path) -> dict[str, str]:
    """Settings that score one public task and no secret ones (an operator's empty folder): a submission is
    3 runs, not 9; the queue is the same."""
    (data_dir.parent / "no-secret-tasks").mkdir(exist_ok=True)
    return {
        "AAR_PGR_TASKS_DIR": str(one_public_task),
        "AAR_PGR_SECRET_TASKS_DIR": str(data_dir.parent / "no-secret-tasks"),
    }


async def _submit_twice(client: Client, snapshot: str, data_dir: Path) -> list[str]:
    """Two submissions of `snapshot`, once the first of them is running."""
    ids = []
    for _ in range(2):
        submitted = await client.call_tool("submit", {"snapshot": snapshot, "entry_point": "method.py:method"})
        assert not submitted.is_error, submitted.content
        ids.append(submitted.structured_content["id"])
    with anyio.fail_after(300):
        while _states(data_dir)[ids[0]] != "running":
            await anyio.sleep(0.2)
    return ids


async def test_a_restart_loses_no_submission_and_reruns_the_running_one(data_dir: Path, one_public_task: Path) -> None:
    repository = await open_repository(make_settings(data_dir))
    snapshot = await repository.save(
        agent="alice", files={"method.py": SLOW_START}, message="m", based_on=None, delete=[]
    )
    tasks = _one_task(data_dir, one_public_task)
    server = HttpServer(data_dir, **tasks).start()
    async with server.client("pgr", "alice") as client:
        await pgr_ready(client)
        ids = await _submit_twice(client, snapshot.id, data_dir)
    server.kill()
    assert _states(data_dir) == {ids[0]: "running", ids[1]: "queued"}

    restarted = HttpServer(data_dir, **tasks).start()
    try:
        async with restarted.client("pgr", "alice") as client:
            with anyio.fail_after(600):
                while set(_states(data_dir).values()) != {"done"}:
                    await anyio.sleep(0.5)
            for submission_id in ids:
                result = (await client.call_tool("submission", {"submission_id": submission_id})).structured_content
                assert result["pgr_mean"] is not None and result["progress"]["done"] == result["progress"]["total"]
    finally:
        restarted.stop()


async def test_the_queue_serves_agents_in_turn_not_first_come(tmp_path: Path) -> None:
    from servers.pgr.store import PgrStore

    store = await PgrStore.open(tmp_path / "pgr.sqlite")
    try:
        ids = {}
        for name in ("alice-1", "alice-2", "alice-3", "bob-1"):
            row = await store.create_submission(
                agent=name.split("-")[0], snapshot="s", entry_point="m.py:m", code_sha256=name, derived_from=[],
                same_code_as=None,
            )  # fmt: skip
            ids[name] = row.id
        first = await store.next_queued()
        assert first is not None and first.id == ids["alice-1"]
        await store.update(ids["alice-1"], state="running", started_at=1.0)
        assert await store.queue_position(ids["bob-1"]) == 1  # behind the running one only
        second = await store.next_queued()
        assert second is not None and second.id == ids["bob-1"], "bob waits behind none of alice's queue"
    finally:
        await store.close()


async def test_an_agent_with_a_submission_running_waits_for_it_and_others_go_first(tmp_path: Path) -> None:
    from servers.pgr.store import PgrStore

    store = await PgrStore.open(tmp_path / "pgr.sqlite")
    try:
        for name in ("alice-1", "bob-1"):
            await store.create_submission(
                agent=name.split("-")[0], snapshot="s", entry_point="m.py:m", code_sha256=name, derived_from=[],
                same_code_as=None,
            )  # fmt: skip
        first = await store.next_queued()
        assert first is not None and first.agent == "alice"
        beside = await store.next_queued(busy={"alice"})
        assert beside is not None and beside.agent == "bob"
        assert await store.next_queued(busy={"alice", "bob"}) is None
    finally:
        await store.close()


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"AAR_PGR_SUBMISSION_TIMEOUT_S": "3600"}, id="in-the-second-place"),
        pytest.param(
            {"AAR_PGR_SUBMISSION_TIMEOUT_S": "150", "AAR_PGR_PARALLEL_SUBMISSIONS": "1"}, id="in-the-place-given-up"
        ),
    ],
)
async def test_a_submission_that_takes_its_whole_time_limit_does_not_hold_the_others(
    data_dir: Path, one_public_task: Path, limits: dict[str, str]
) -> None:
    """Mallory's method sleeps until the time limit; Bob's submission, made after it started, is scored meanwhile,
    and Mallory's second submission waits for her first (one running submission per agent). Bob's runs in the
    second place (two at once, the default), or with one place in the one Mallory's gave up 15 s in (a tenth of
    its 150 s limit): before, Bob waited the whole 150 s there, and two such agents held both places."""
    repository = await open_repository(make_settings(data_dir))
    stuck = await repository.save(
        agent="mallory", files={"method.py": NEVER_ENDS}, message="m", based_on=None, delete=[]
    )
    quick = await repository.save(agent="bob", files={"method.py": SLOW_START}, message="m", based_on=None, delete=[])
    server = HttpServer(data_dir, **_one_task(data_dir, one_public_task), **limits).start()
    try:
        async with server.client("pgr", "mallory") as mallory, server.client("pgr", "bob") as bob:
            await pgr_ready(mallory)
            held = await _submit_twice(mallory, stuck.id, data_dir)
            submitted = await bob.call_tool("submit", {"snapshot": quick.id, "entry_point": "method.py:method"})
            assert not submitted.is_error, submitted.content
            with anyio.fail_after(600):
                while _states(data_dir)[submitted.structured_content["id"]] not in ("done", "flagged", "failed"):
                    await anyio.sleep(0.5)
            result = (
                await bob.call_tool("submission", {"submission_id": submitted.structured_content["id"]})
            ).structured_content
            assert result is not None and result["state"] == "done", result
            assert _states(data_dir)[held[0]] == "running" and _states(data_dir)[held[1]] == "queued"
    finally:
        server.stop()


async def test_a_submission_running_past_a_tenth_of_its_time_limit_yields_the_cpu(
    data_dir: Path, one_public_task: Path
) -> None:
    """Mallory's method burns CPU until the time limit (300 s here): its runs start at every agent's CPU weight
    and lose it once the submission is 30 s old, so that younger submissions' runs get the cores (the
    kernel's side of it: tests/sandbox/test_shares.py). Read from the runs' own cgroups on the host."""
    cgroups = CgroupRoot.detect()
    if cgroups is not None:
        cgroups.remove()
    if cgroups is None or cgroups.cpu_dir is None:
        pytest.skip("no usable cpu cgroup controller here: runs have no CPU weight")
    repository = await open_repository(make_settings(data_dir))
    burns = await repository.save(
        agent="mallory", files={"method.py": BURNS_CPU}, message="m", based_on=None, delete=[]
    )
    server = HttpServer(data_dir, **_one_task(data_dir, one_public_task), AAR_PGR_SUBMISSION_TIMEOUT_S="300").start()
    try:
        async with server.client("pgr", "mallory") as mallory:
            await pgr_ready(mallory)
            submitted = await mallory.call_tool("submit", {"snapshot": burns.id, "entry_point": "method.py:method"})
            assert not submitted.is_error, submitted.content
            runs = f"agent-{submitted.structured_content['id']}-*"
            with anyio.fail_after(120):
                while not (weights := _cpu_weights(runs)) or min(weights) >= CPU_WEIGHT:
                    await anyio.sleep(1)
            assert 1 <= min(weights) < CPU_WEIGHT, weights
            assert _states(data_dir)[submitted.structured_content["id"]] == "running"
    finally:
        server.stop()


def _cpu_weights(pattern: str) -> list[int]:
    """The CPU weights of the cgroups matching `pattern`, on cgroup v2's scale (v1's cpu.shares converted)."""
    weights = []
    for cgroup in Path("/sys/fs/cgroup").rglob(pattern):
        for name, scale in (("cpu.weight", 1.0), ("cpu.shares", CPU_WEIGHT / CPU_SHARES)):
            with contextlib.suppress(OSError):
                weights.append(round(int((cgroup / name).read_text()) * scale))
    return weights


async def test_a_cold_server_answers_at_once_and_says_how_far_it_is(tmp_path: Path) -> None:
    from servers import catalog

    settings = make_settings(tmp_path / "data", w2s_cache_dir=tmp_path / "cold-cache")
    async with Client(catalog.factory("pgr")(settings, local_agent="alice")) as client:
        with anyio.fail_after(20):
            info = (await client.call_tool("task_info", {})).structured_content
            scored = await client.call_tool("evaluate_predictions", {"task": "negation", "predictions": "01"})
    assert info is not None and info["ready"] is False and info["tasks"] == []
    assert info["preparing"]["total"] == len(list_tasks()) + 2 and info["secret_tasks"] == 2  # one seed each
    assert scored.is_error and "preparing its data" in scored.content[0].text  # type: ignore[union-attr]
