"""The HTTP gate of every server: a request carries an agent's bearer token, or gets a 401 that says how to get one.

The SDK's own gate advertises OAuth protected-resource metadata naming an authorization server;
this project has none (tokens come from `aar tokens create NAME`), so clients that followed it
started an OAuth flow that could only fail. This gate advertises nothing and names the command.
It reuses the SDK's bearer backend and auth context, so `get_access_token()` works in tools and
each streamable HTTP session stays bound to the agent that opened it.
"""

from __future__ import annotations

import json

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.kit.identity import AgentTokenVerifier

MISSING = (
    "this server needs an agent's bearer token: create one with `aar tokens create NAME` "
    "and send it as the header 'Authorization: Bearer TOKEN'"
)
UNKNOWN = (
    "this bearer token is unknown or was revoked (a new token for an agent revokes its old one): "
    "create one with `aar tokens create NAME`"
)


class _RequireAgent:
    """Passes requests whose token named an agent; answers the others with a 401 and what to do."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or isinstance(scope.get("user"), AuthenticatedUser):
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        presented = headers.get(b"authorization", b"").lower().startswith(b"bearer ")
        description = UNKNOWN if presented else MISSING
        body = json.dumps({"error": "invalid_token", "error_description": description}).encode()
        challenge = f'Bearer realm="aar", error="invalid_token", error_description="{description}"'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def require_agent_token(app: ASGIApp, verifier: AgentTokenVerifier) -> ASGIApp:
    """`app` behind the bearer gate: authenticate, publish the agent to tools, refuse anyone else."""
    gated = AuthContextMiddleware(_RequireAgent(app))
    return AuthenticationMiddleware(gated, backend=BearerAuthBackend(verifier))
