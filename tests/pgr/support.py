"""Playing an agent against the PGR server: its own in-memory MCP session, snapshots, submissions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from servers import catalog
from servers.storage.store import open_repository
from tests.support import make_settings, pgr_ready


@asynccontextmanager
async def pgr_client(data_dir: Path, agent: str = "mallory", **settings: Any) -> AsyncIterator[Client]:
    """An agent's session with a PGR server over data_dir, once the server is ready."""
    async with Client(catalog.factory("pgr")(make_settings(data_dir, **settings), local_agent=agent)) as client:
        await pgr_ready(client)
        yield client


async def save(
    data_dir: Path, code: str, agent: str = "mallory", *, path: str = "method.py", based_on: str | None = None
) -> str:
    repository = await open_repository(make_settings(data_dir))
    snapshot = await repository.save(agent=agent, files={path: code}, message="m", based_on=based_on, delete=[])
    return snapshot.id


async def submit(client: Client, snapshot: str, entry_point: str = "method.py:method") -> dict[str, Any]:
    submitted = await client.call_tool("submit", {"snapshot": snapshot, "entry_point": entry_point})
    assert not submitted.is_error, submitted.content
    content: dict[str, Any] = submitted.structured_content
    return content


async def wait(client: Client, submission_id: str, timeout: float = 900) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            result: dict[str, Any] | None = (
                await client.call_tool("submission", {"submission_id": submission_id})
            ).structured_content
            assert result is not None
            if result["state"] in ("done", "flagged", "failed"):
                return result
            await anyio.sleep(0.5)


async def submit_and_wait(client: Client, snapshot: str) -> dict[str, Any]:
    return await wait(client, (await submit(client, snapshot))["id"])


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    return str(result.content[0].text)
