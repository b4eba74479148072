"""`AAR_HTTP_WORKERS`: several processes serve the forum on one port, and they behave as one server.

Each request may reach any worker, so nothing an agent does may depend on which one answers:
every acknowledged post is stored once, per-agent limits hold across workers, a stop signal
ends every worker, and a server that keeps per-session state refuses to be spread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from tests.support import AAR, HttpServer, server_env

pytestmark = pytest.mark.anyio

AGENTS = [f"agent-{number}" for number in range(9)]
POSTS_EACH = 6
LIMIT = 10


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


async def test_nine_agents_posting_through_two_workers_lose_nothing_and_share_their_limits(data_dir: Path) -> None:
    server = HttpServer(data_dir, serve="forum", AAR_HTTP_WORKERS="2", AAR_FORUM_POSTS_PER_MINUTE=str(LIMIT)).start()
    try:
        assert server.process is not None
        workers = _children(server.process.pid)
        assert len(workers) == 1, f"expected one forked worker beside the parent, found {workers}"

        async def agent(name: str) -> None:
            for number in range(POSTS_EACH):
                async with server.client("forum", name) as client:  # a new connection each time: any worker
                    result = await client.call_tool("post", {"title": f"{name} {number}", "body": "x", "kind": "note"})
                    assert not result.is_error, result.content

        async with anyio.create_task_group() as group:
            for name in AGENTS:
                group.start_soon(agent, name)

        async with server.client("forum", "reader") as client:
            seen: list[str] = []
            cursor = 0
            while True:
                feed = (await client.call_tool("feed", {"since": cursor, "limit": 100})).structured_content
                assert feed is not None
                seen += [post["title"] for post in feed["posts"]]
                cursor = feed["next_cursor"]
                if not feed["has_more"]:
                    break
        assert sorted(seen) == sorted(f"{name} {number}" for name in AGENTS for number in range(POSTS_EACH))

        # The per-agent limit counts posts in SQLite, so it holds whichever worker answers.
        accepted = 0
        for number in range(LIMIT + 4):
            async with server.client("forum", "flooder") as client:
                result = await client.call_tool("post", {"title": f"flood {number}", "body": "x", "kind": "note"})
                accepted += not result.is_error
        assert accepted == LIMIT, f"{accepted} posts accepted in a minute with a limit of {LIMIT} across workers"
    finally:
        server.stop()
    for worker in workers:
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "a forked worker outlived its stopped server"


def test_a_killed_parent_takes_its_workers_with_it(data_dir: Path) -> None:
    server = HttpServer(data_dir, serve="forum", AAR_HTTP_WORKERS="3").start()
    assert server.process is not None
    workers = _children(server.process.pid)
    assert len(workers) == 2
    server.kill()
    deadline = time.monotonic() + 10
    while any(_alive(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(worker) for worker in workers), "workers outlived a kill -9 of their parent"


def test_servers_with_session_state_refuse_to_be_spread_over_workers(data_dir: Path) -> None:
    for name in ("all", "storage", "sandbox", "pgr"):
        completed = subprocess.run(
            [AAR, "serve", name, "--http", "--port", "0"],
            env={**server_env(data_dir), "AAR_HTTP_WORKERS": "2"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 2, completed.stderr
        assert "AAR_HTTP_WORKERS=2" in completed.stderr and "one process" in completed.stderr, completed.stderr


def test_ctrl_c_stops_every_worker(data_dir: Path) -> None:
    server = HttpServer(data_dir, serve="forum", AAR_HTTP_WORKERS="2").start()
    assert server.process is not None
    workers = _children(server.process.pid)
    for pid in (server.process.pid, *workers):  # a terminal's Ctrl-C reaches the whole process group
        os.kill(pid, signal.SIGINT)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        pytest.fail(f"`aar serve forum --http` with two workers ignored Ctrl-C:\n{server.log()}")
    for worker in workers:
        assert not _alive(worker)
