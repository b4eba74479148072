"""How a server is built and where it runs: stdio, its own HTTP app, or all in one uvicorn process.

Every server package exposes `create_server(settings, local_agent=...)`. With a
`local_agent` (stdio, in-memory tests) the identity is fixed; without one the server
requires bearer tokens, which only the HTTP transport can carry.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import uvicorn
from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from servers.kit.identity import AgentTokenVerifier
from servers.kit.settings import Settings

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


class ServerFactory(Protocol):
    def __call__(self, settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]: ...


def mcp_path(name: str) -> str:
    """Where server `name` answers in the combined HTTP app."""
    return f"/{name}/mcp"


def new_server(
    name: str,
    *,
    instructions: str,
    settings: Settings,
    local_agent: str | None,
    lifespan: Callable[[MCPServer[Any]], contextlib.AbstractAsyncContextManager[Any]],
) -> MCPServer[Any]:
    """An `MCPServer` with this project's conventions: bearer tokens unless a local agent is fixed."""
    auth: dict[str, Any] = {}
    if local_agent is None:
        base_url = f"http://{settings.host}:{settings.port}"
        auth = {
            "token_verifier": AgentTokenVerifier(settings.identity_db),
            "auth": AuthSettings(
                issuer_url=base_url,
                resource_server_url=base_url + mcp_path(name),
                validate_token_resource=False,  # a token names an agent, valid on every server
            ),
        }
    return MCPServer(name, instructions=instructions, version=VERSION, lifespan=lifespan, log_level="WARNING", **auth)


def http_app(servers: Mapping[str, MCPServer[Any]]) -> Starlette:
    """One Starlette app serving each server at `/NAME/mcp`, plus `/healthz`.

    A mounted app's own lifespan never runs, so this app's lifespan enters every
    server's session manager (which in turn runs the server's lifespan).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for server in servers.values():
                await stack.enter_async_context(server.session_manager.run())
            yield

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "servers": sorted(servers)})

    routes: list[Route | Mount] = [Route("/healthz", healthz)]
    routes += [
        Mount(f"/{name}", app=server.streamable_http_app(streamable_http_path="/mcp"))
        for name, server in servers.items()
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve_http(servers: Mapping[str, MCPServer[Any]], settings: Settings) -> None:
    """Serve `servers` over streamable HTTP until interrupted, announcing each URL on stdout."""
    for name in servers:
        print(f"{name}: http://{settings.host}:{settings.port}{mcp_path(name)}", flush=True)
    print("each agent needs a bearer token: `aar tokens create NAME`; Ctrl-C stops", file=sys.stderr, flush=True)
    config = uvicorn.Config(http_app(servers), host=settings.host, port=settings.port, log_level="warning")
    uvicorn.Server(config).run()


def configure_logging(level: int = logging.INFO) -> None:
    """Logs go to stderr: a stdio server's stdout belongs to the protocol."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
