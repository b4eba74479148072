"""The console's writes: through the servers' own tools, as the operator `human:NAME`, never into their files.

Every write then has one path and one audit trail: the server checks it as it checks an agent's
call (limits, validation) and records who made it. While the team runs in this process its
servers are up, and the console calls them over streamable HTTP with each operator's own token.
For a finished run the console starts the server it needs over stdio, as the server's manifest
says, on the run's data, for the one call (a server left running on a finished run would go on
working its queue).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from servers.kit import manifest as server_manifests
from servers.kit.identity import operator_identity

CALL_TIMEOUT_S = 120.0


class ToolRefused(Exception):
    """The server refused the operator's call; the message is the server's own."""


@dataclass
class ServerLinks:
    """Where a live run's servers answer, and the tokens of its operators (by `human:NAME`)."""

    urls: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)


class FrontDoor:
    """Calls a server's tool as an operator: over HTTP while the run is live here, else over stdio."""

    def __init__(self, data_dir: Path, *, live: bool, links: ServerLinks | None = None) -> None:
        self.data_dir = data_dir
        self.live = live
        """The team runs in this process: never start a second server on its data."""
        self.links = links

    async def call(self, operator: str, server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's structured result; raises ToolRefused with the server's message when it refuses."""
        identity = operator_identity(operator)
        if self.live and self.links is None:
            raise ToolRefused("the run's servers are still starting: try again in a moment")
        if self.links is None:
            result = await self._over_stdio(identity, server, tool, arguments)
        else:
            result = await self._over_http(identity, server, tool, arguments)
        if result.is_error:
            text = " ".join(part.text for part in result.content if isinstance(part, TextContent))
            raise ToolRefused(text or f"{server} refused {tool}")
        return result.structured_content or {}

    async def _over_http(self, identity: str, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        assert self.links is not None
        if server not in self.links.urls or identity not in self.links.tokens:
            raise ToolRefused(
                f"this run's {server} server runs elsewhere: act there with a token of your own"
                f" (`aar tokens create {identity}` where it runs)"
            )
        headers = {"Authorization": f"Bearer {self.links.tokens[identity]}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT_S) as http,
            Client(streamable_http_client(self.links.urls[server], http_client=http)) as client,
        ):
            return await client.call_tool(tool, arguments)

    async def _over_stdio(self, identity: str, server: str, tool: str, arguments: dict[str, Any]) -> Any:
        if not self.data_dir.exists():
            raise ToolRefused(f"this run has no server data under {self.data_dir} (were its servers launched?)")
        command, *args = server_manifests.launch_command(server, "stdio")
        env = {**os.environ, "AAR_DATA_DIR": str(self.data_dir)}
        params = StdioServerParameters(command=command, args=[*args, "--agent", identity], env=env)
        async with Client(params) as client:
            return await client.call_tool(tool, arguments)
