"""One agent's tools: MCP servers over streamable HTTP, offered to the model as Anthropic tools.

A tool `exec` of server `sandbox` is offered as `sandbox__exec`, with the description and input
schema the server declares (manifests/servers/NAME/lock.json, which the server tests keep equal to the
live servers); every agent with the same allowlist gets the same list, so the prompt cache is
shared. A call outside the agent's allowlist never reaches a server: it is refused, and the
refusal is what the model reads. Each agent has its own bearer token and its own connections,
opened on first use and reopened when a server goes away and comes back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from client.run_manifest import TOOL_SEPARATOR, ToolCatalogue
from client.tls import shared_ssl_context

logger = logging.getLogger(__name__)

NOT_SENT = -32051
"""JSON-RPC error code for a request that never reached the server (connection refused)."""
CONNECTION_LOST = -32050
"""JSON-RPC error code for a request whose connection failed after it was sent."""

MAX_RESULT_CHARS = 40_000


class _FailFastTransport(httpx2.AsyncBaseTransport):
    """Turns a failed POST into a JSON-RPC error response.

    Without this, a connection error escapes into the MCP client's task group and the pending
    call waits forever; with it the call fails at once with a code that says whether the
    request reached the server.
    """

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport(verify=shared_ssl_context())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except httpx2.TransportError as error:
            if request.method != "POST":
                raise
            code = NOT_SENT if isinstance(error, httpx2.ConnectError) else CONNECTION_LOST
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": code, "message": f"{type(error).__name__}: {error}"},
            }
            return httpx2.Response(503, json=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class ServerUnreachable(Exception):
    """A server could not be reached within the reconnect window."""


@dataclass(frozen=True)
class ToolOutcome:
    """What the model reads back from a tool call, plus what the record keeps."""

    text: str
    is_error: bool
    structured: dict[str, Any] | None = None
    refused: str | None = None
    duration_s: float = 0.0


class _Connection:
    """An agent's MCP session with one server, held open by a keeper task of the agent's task group.

    The session's context is entered and exited by that keeper task, never inside a call's
    cancel scope, so a call can time out or be cancelled without tearing the session down
    out of order.
    """

    def __init__(self, server: str, url: str, token: str, tool_timeout_s: float) -> None:
        self.server, self.url = server, url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = httpx2.Timeout(30.0, read=tool_timeout_s + 60.0)
        self.client: Client | None = None
        self._closing: anyio.Event | None = None
        self._closed: anyio.Event | None = None

    async def open(self, tasks: TaskGroup) -> Client:
        if self.client is not None:
            return self.client
        ready, closing, closed = anyio.Event(), anyio.Event(), anyio.Event()
        outcome: dict[str, Any] = {}

        async def keep() -> None:
            try:
                async with (
                    httpx2.AsyncClient(
                        headers=self._headers, timeout=self._timeout, transport=_FailFastTransport()
                    ) as http,
                    Client(streamable_http_client(self.url, http_client=http)) as client,
                ):
                    outcome["client"] = client
                    ready.set()
                    await closing.wait()
            except Exception as error:  # a session that died with its server may raise anything on exit
                outcome.setdefault("error", error)
                logger.debug("%s session ended: %r", self.server, error)
            finally:
                ready.set()
                closed.set()

        tasks.start_soon(keep, name=f"mcp {self.server}")
        await ready.wait()
        if "client" not in outcome:
            cause = outcome.get("error")
            while isinstance(cause, ExceptionGroup) and len(cause.exceptions) == 1:
                cause = cause.exceptions[0]
            raise ServerUnreachable(f"could not open a session with {self.server}: {cause}")
        self.client, self._closing, self._closed = outcome["client"], closing, closed
        return self.client

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool on the open session; fails at once if the session ends while the call waits."""
        assert self.client is not None and self._closed is not None
        client, closed = self.client, self._closed
        result: CallToolResult | None = None
        failure: MCPError | None = None
        async with anyio.create_task_group() as race:

            async def watch() -> None:
                await closed.wait()
                race.cancel_scope.cancel()

            race.start_soon(watch)
            try:
                result = await client.call_tool(tool, arguments)
            except MCPError as error:  # raised here, not out of the task group (which would wrap it)
                failure = error
            race.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if result is None:
            raise MCPError(CONNECTION_LOST, f"the session with {self.server} ended during the call")
        return result

    async def reset(self) -> None:
        """Close the session (bounded, shielded); the next call opens a new one."""
        closing, closed = self._closing, self._closed
        self.client = self._closing = self._closed = None
        if closing is None or closed is None:
            return
        closing.set()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await closed.wait()


class ToolBridge:
    """The tools one agent may use, and the calls it makes with its own identity."""

    def __init__(
        self,
        *,
        urls: dict[str, str],
        token: str,
        allowed: list[str],
        catalogue: ToolCatalogue,
        tool_timeout_s: float,
        reconnect_s: float,
        defaults: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.allowed = set(allowed)
        self._defaults = defaults or {}
        """Tool -> arguments the run manifest fills in when the model leaves them out (e.g. a job's GPUs)."""
        self._catalogue = catalogue
        self._tool_timeout_s = tool_timeout_s
        self._reconnect_s = reconnect_s
        self._connections = {server: _Connection(server, url, token, tool_timeout_s) for server, url in urls.items()}
        self.tools = [self._anthropic_tool(name) for name in allowed]
        self._tasks: TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ToolBridge]:
        """The scope in which calls can be made: it owns the sessions' keeper tasks and closes them at the end."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                for connection in self._connections.values():
                    await connection.reset()
                self._tasks = None
                tasks.cancel_scope.cancel()

    def _anthropic_tool(self, name: str) -> dict[str, Any]:
        declared = self._catalogue.declared(name)
        assert declared is not None, f"{name} was expanded from the catalogue"
        return {"name": name, "description": declared.get("description", ""), "input_schema": declared["inputSchema"]}

    async def call(self, name: str, arguments: Any, *, internal: bool = False) -> ToolOutcome:
        """Call a tool as the agent; every failure comes back as an error outcome the model can read.

        `internal` calls are the client's own bookkeeping (collecting scores), not the model's,
        and are not held to the allowlist.
        """
        started = time.monotonic()
        server, _, tool = name.partition(TOOL_SEPARATOR)
        if internal and server not in self._connections:
            return ToolOutcome(text=f"error: this run does not use server {server!r}", is_error=True)
        if not internal and name not in self.allowed:
            reason = f"{name!r} is not one of your tools" + (
                "" if self._catalogue.declared(name) else " (no server offers it)"
            )
            return ToolOutcome(
                text=f"refused: {reason}. Your tools: {', '.join(sorted(self.allowed))}",
                is_error=True,
                refused=reason,
            )
        if not isinstance(arguments, dict):
            return ToolOutcome(text="error: tool input must be a JSON object", is_error=True)
        arguments = {**self._defaults.get(name, {}), **arguments}
        try:
            with anyio.fail_after(self._tool_timeout_s):
                outcome = await self._call_with_reconnect(server, tool, name, arguments)
        except TimeoutError:
            outcome = ToolOutcome(
                text=f"error: {name} did not answer within {self._tool_timeout_s:g} s and was abandoned; "
                "it may still be running on the server (prefer start_job for long work)",
                is_error=True,
            )
        except ServerUnreachable as error:
            outcome = ToolOutcome(text=f"error: {error}; try again later", is_error=True)
        return ToolOutcome(
            text=outcome.text,
            is_error=outcome.is_error,
            structured=outcome.structured,
            duration_s=round(time.monotonic() - started, 4),
        )

    async def _call_with_reconnect(self, server: str, tool: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Call, reopening the session when the server went away.

        A request that never reached the server is repeated once the server is back; one that
        was lost after it was sent is repeated only if the tool is idempotent (a few times).
        """
        connection = self._connections[server]
        repeats_left = 2
        while True:
            await self._open(connection)
            try:
                return _outcome(await connection.call(tool, arguments))
            except MCPError as error:
                await connection.reset()
                never_sent = error.code == NOT_SENT or error.message == "Session terminated"
                if never_sent or (self._catalogue.idempotent(name) and repeats_left > 0):
                    repeats_left -= not never_sent
                    logger.info("%s: %s; reconnecting to repeat %s", server, error.message, name)
                    continue
                return ToolOutcome(
                    text=f"error: the connection to {server} failed during the call ({error.message}); "
                    "it may or may not have taken effect: check before repeating it",
                    is_error=True,
                )

    async def _open(self, connection: _Connection) -> Client:
        """Open the connection, retrying with backoff for up to the reconnect window."""
        assert self._tasks is not None, "calls are made inside `async with bridge.running()`"
        deadline = time.monotonic() + self._reconnect_s
        delay = 0.2
        while True:
            try:
                return await connection.open(self._tasks)
            except ServerUnreachable as error:
                await connection.reset()
                if time.monotonic() + delay > deadline:
                    raise ServerUnreachable(
                        f"server {connection.server} unreachable for {self._reconnect_s:g} s ({error})"
                    ) from None
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _outcome(result: CallToolResult) -> ToolOutcome:
    structured = result.structured_content
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    others = len(result.content) - len(texts)
    if texts:
        text = "\n".join(texts)
    elif structured is not None:
        text = json.dumps(structured)
    else:
        text = "(no output)"
    if others:
        text += f"\n[{others} non-text content block(s) omitted]"
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[truncated: {len(text) - MAX_RESULT_CHARS} more characters; read in parts]"
    return ToolOutcome(text=text, is_error=bool(result.is_error), structured=structured)
