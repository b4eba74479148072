"""Through the MCP server over HTTP: a job outlives the client that started it, and a server
killed with -9 lists its finished jobs afterwards and marks the running ones lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.support import HttpServer, running_http_server

pytestmark = pytest.mark.anyio


async def _wait_for_state(server: HttpServer, job_id: str, states: set[str], timeout: float = 30) -> dict:  # type: ignore[type-arg]
    with anyio.fail_after(timeout):
        while True:
            async with server.client("sandbox", "alice") as client:
                job: dict[str, Any] = (await client.call_tool("job_status", {"job_id": job_id})).structured_content
            if job["state"] in states:
                return job
            await anyio.sleep(0.2)


async def test_a_job_keeps_running_after_its_client_disconnects(http_server: HttpServer) -> None:
    async with http_server.client("sandbox", "alice") as client:
        started = await client.call_tool("start_job", {"name": "slow", "command": "sleep 1; echo finished"})
        job_id = started.structured_content["id"]
    job = await _wait_for_state(http_server, job_id, {"succeeded", "failed"})
    assert job["state"] == "succeeded"
    async with http_server.client("sandbox", "alice") as client:
        logs = (await client.call_tool("job_logs", {"job_id": job_id})).structured_content
    assert logs["text"] == "finished\n" and logs["complete"]


async def test_after_kill_9_finished_jobs_remain_and_running_ones_are_lost(data_dir: Path) -> None:
    server = HttpServer(data_dir).start()
    async with server.client("sandbox", "alice") as client:
        done = (await client.call_tool("start_job", {"name": "done", "command": "echo kept"})).structured_content
        await _wait_for_state(server, done["id"], {"succeeded"})
        running = (await client.call_tool("start_job", {"name": "long", "command": "sleep 600"})).structured_content
        await _wait_for_state(server, running["id"], {"running"})
    server.kill()
    with running_http_server(data_dir) as restarted:
        async with restarted.client("sandbox", "alice") as client:
            jobs = (await client.call_tool("list_jobs", {})).structured_content["jobs"]
            states = {job["name"]: job["state"] for job in jobs}
            assert states == {"done": "succeeded", "long": "lost"}
            logs = (await client.call_tool("job_logs", {"job_id": done["id"]})).structured_content
            assert logs["text"] == "kept\n"


async def test_one_agent_cannot_see_or_cancel_another_agents_job(http_server: HttpServer) -> None:
    async with http_server.client("sandbox", "alice") as alice, http_server.client("sandbox", "bob") as bob:
        job = (await alice.call_tool("start_job", {"name": "mine", "command": "sleep 30"})).structured_content
        for tool in ("job_status", "job_logs", "cancel_job"):
            result = await bob.call_tool(tool, {"job_id": job["id"]})
            assert result.is_error and "no job" in result.content[0].text  # type: ignore[union-attr]
        assert (await bob.call_tool("list_jobs", {})).structured_content["jobs"] == []
        written = await alice.call_tool("write_file", {"path": "secret.txt", "content": "alice only"})
        assert not written.is_error
        peek = await bob.call_tool("exec", {"command": "cat /workspace/secret.txt; ls /workspace/.. 2>&1"})
        assert "alice only" not in peek.structured_content["stdout"]
        await alice.call_tool("cancel_job", {"job_id": job["id"]})
