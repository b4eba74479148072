"""Nine concurrent clients lose nothing, and kill -9 right after acknowledged writes loses nothing."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.support import HttpServer, running_http_server

pytestmark = pytest.mark.anyio

AGENTS = [f"agent-{n}" for n in range(9)]
POSTS_EACH = 20
SAVES_EACH = 4


async def _write_from_nine_agents(server: HttpServer) -> dict[str, list[str]]:
    """Every agent posts and saves concurrently; returns the acknowledged snapshot ids per agent."""
    acknowledged: dict[str, list[str]] = {agent: [] for agent in AGENTS}

    async def work(agent: str) -> None:
        async with server.client("forum", agent) as forum, server.client("storage", agent) as storage:
            for number in range(POSTS_EACH):
                result = await forum.call_tool("post", {"title": f"{agent} {number}", "body": "x", "kind": "note"})
                assert not result.is_error, result.content
            for number in range(SAVES_EACH):
                result = await storage.call_tool("save", {"files": {"n.txt": str(number)}, "message": f"save {number}"})
                assert not result.is_error, result.content
                acknowledged[agent].append(result.structured_content["id"])

    async with anyio.create_task_group() as group:
        for agent in AGENTS:
            group.start_soon(work, agent)
    return acknowledged


def _stored_posts(data_dir: Path) -> dict[str, int]:
    with sqlite3.connect(data_dir / "forum.sqlite") as connection:
        return dict(connection.execute("SELECT author, count(*) FROM posts GROUP BY author").fetchall())


def _branch_log(data_dir: Path, agent: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(data_dir / "storage.git"), "log", "--format=%H", f"refs/heads/{agent}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


async def test_nine_concurrent_clients_lose_no_write(http_server: HttpServer) -> None:
    for agent in AGENTS:
        http_server.token(agent)
    acknowledged = await _write_from_nine_agents(http_server)
    assert _stored_posts(http_server.data_dir) == dict.fromkeys(AGENTS, POSTS_EACH)
    for agent in AGENTS:
        assert _branch_log(http_server.data_dir, agent) == list(reversed(acknowledged[agent]))
    assert "database is locked" not in http_server.log()


async def test_kill_9_after_acknowledged_writes_loses_none(data_dir: Path) -> None:
    server = HttpServer(data_dir).start()
    for agent in AGENTS:
        server.token(agent)
    acknowledged = await _write_from_nine_agents(server)
    server.kill()

    with running_http_server(data_dir) as restarted:
        async with restarted.client("forum", "agent-0") as forum:
            feed = await forum.call_tool("feed", {"since": 0, "limit": 200})
            assert len(feed.structured_content["posts"]) == len(AGENTS) * POSTS_EACH
        async with restarted.client("storage", "agent-0") as storage:
            for agent, ids in acknowledged.items():
                for snapshot in ids:
                    result = await storage.call_tool("get_snapshot", {"snapshot": snapshot})
                    assert not result.is_error and result.structured_content["author"] == agent
