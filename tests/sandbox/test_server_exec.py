"""Through the MCP server: a long exec keeps its client waiting with progress notifications, and
its description points long work to start_job."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from servers import catalog
from tests.support import make_settings

pytestmark = pytest.mark.anyio


async def test_a_running_exec_reports_progress_and_points_to_start_job(data_dir: Path) -> None:
    settings = make_settings(data_dir, sandbox_limits={"exec_progress_s": 0.2})
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with Client(catalog.factory("sandbox")(settings, local_agent="alice")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert "start_job" in (tools["exec"].description or "")
        result = await client.call_tool("exec", {"command": "sleep 2; echo done"}, progress_callback=on_progress)
        assert not result.is_error and result.structured_content["stdout"] == "done\n"
    assert reports, "no progress was reported while the command ran"
    progress, total, message = reports[-1]
    assert total == 120.0 and 0 < progress <= 120.0  # the default exec limit
    assert message is not None and "start_job" in message


async def test_list_files_pages_through_the_mcp_tool(data_dir: Path) -> None:
    settings = make_settings(data_dir, sandbox_limits={"list_max_entries": 3})
    async with Client(catalog.factory("sandbox")(settings, local_agent="alice")) as client:
        await client.call_tool("exec", {"command": "for i in 1 2 3 4 5; do : > f$i; done"})
        first = (await client.call_tool("list_files", {"limit": 10})).structured_content
        assert first is not None and [e["path"] for e in first["entries"]] == ["f1", "f2", "f3"]
        assert first["truncated"] and first["next_offset"] == 3
        rest = (await client.call_tool("list_files", {"offset": 3})).structured_content
        assert rest is not None and [e["path"] for e in rest["entries"]] == ["f4", "f5"]
        assert rest["next_offset"] is None and not rest["truncated"]
