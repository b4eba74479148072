"""The submission queue is persisted: a server killed mid-run re-runs what it was running."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from servers.storage.server import open_repository
from tests.support import HttpServer, make_settings, running_http_server

pytestmark = pytest.mark.anyio

SLOW_START = """\
import time
from servers.w2s.methods.plain_ce import plain_ce

def method(inp):
    time.sleep(1)
    return plain_ce(inp)
"""


def _states(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(data_dir / "pgr.sqlite") as connection:
        return dict(connection.execute("SELECT id, state FROM submissions").fetchall())


async def test_a_restart_loses_no_submission_and_reruns_the_running_one(data_dir: Path) -> None:
    repository = await open_repository(make_settings(data_dir))
    snapshot = await repository.save(
        agent="alice", files={"method.py": SLOW_START}, message="m", based_on=None, delete=[]
    )
    server = HttpServer(data_dir).start()
    async with server.client("pgr", "alice") as client:
        ids = []
        for _ in range(2):
            submitted = await client.call_tool("submit", {"snapshot": snapshot.id, "entry_point": "method.py:method"})
            assert not submitted.is_error, submitted.content
            ids.append(submitted.structured_content["id"])  # type: ignore[index]
        with anyio.fail_after(300):
            while _states(data_dir)[ids[0]] != "running":
                await anyio.sleep(0.2)
    server.kill()
    assert _states(data_dir) == {ids[0]: "running", ids[1]: "queued"}

    with running_http_server(data_dir) as restarted:
        async with restarted.client("pgr", "alice") as client:
            with anyio.fail_after(600):
                while set(_states(data_dir).values()) != {"done"}:
                    await anyio.sleep(0.5)
            for submission_id in ids:
                result = (await client.call_tool("submission", {"submission_id": submission_id})).structured_content
                assert result["pgr_mean"] is not None and result["progress"]["done"] == result["progress"]["total"]  # type: ignore[index]
