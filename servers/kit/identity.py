"""Who is calling: agent names, bearer tokens stored hashed, and the caller of a tool call.

Over HTTP every agent presents its own bearer token, which the SDK's bearer middleware
checks through `AgentTokenVerifier` (401 for a missing or unknown token, see `bearer`). Over stdio and
in memory there is no token: the identity is fixed when the server is built
(`local_agent`). No tool takes an author argument, so an agent cannot claim to be another.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from pathlib import Path

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from servers.kit.database import Database
from servers.kit.errors import PermissionDeniedError, ToolInputError
from servers.kit.names import AGENT_NAME

TOKEN_PREFIX = "aar_"  # noqa: S105 a prefix that marks tokens, not a secret
OPERATOR_PREFIX = "human:"
"""A person acting through the console is `human:NAME`: never an agent's name (agents' names have no ':')."""
OPERATOR_ONLY = "aar/operator-only"
"""Key of a tool's `_meta` marking a tool only an operator may call: a run offers it to no agent."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_sha256 TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_agent ON tokens(agent);
"""


def validate_agent_name(name: str) -> str:
    """Return `name` if it is a valid agent name, else raise a `ToolInputError` that says the rule."""
    if not AGENT_NAME.match(name):
        raise ToolInputError(
            f"invalid agent name {name!r}: use 1-32 characters of a-z, 0-9, '_' and '-',"
            " starting with a letter or digit"
        )
    return name


def operator_identity(name: str) -> str:
    """The identity an operator (a person, NAME an agent-style name) calls the servers' tools with."""
    return OPERATOR_PREFIX + validate_agent_name(name)


def is_operator(identity: str) -> bool:
    return identity.startswith(OPERATOR_PREFIX)


def validate_identity(identity: str) -> str:
    """An agent's name, or an operator's `human:NAME`; else a `ToolInputError` that says the rules."""
    if is_operator(identity):
        return operator_identity(identity.removeprefix(OPERATOR_PREFIX))
    return validate_agent_name(identity)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Bearer tokens of the agents, kept only as SHA-256 digests (tokens are 256 random bits)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path) -> TokenStore:
        return cls(await Database.open(path, _SCHEMA))

    async def close(self) -> None:
        await self._database.close()

    async def create(self, agent: str) -> str:
        """Issue a new token for `agent` (or an operator's `human:NAME`), revoking its earlier ones; the plain
        token is returned once."""
        validate_identity(agent)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._database.transaction() as connection:
            await connection.execute("DELETE FROM tokens WHERE agent = ?", (agent,))
            await connection.execute(
                "INSERT INTO tokens (token_sha256, agent, created_at) VALUES (?, ?, ?)",
                (_digest(token), agent, time.time()),
            )
        return token

    async def revoke(self, agent: str) -> bool:
        async with self._database.transaction() as connection:
            cursor = await connection.execute("DELETE FROM tokens WHERE agent = ?", (agent,))
            return cursor.rowcount > 0

    async def agents(self) -> list[str]:
        rows = await self._database.fetch_all("SELECT DISTINCT agent FROM tokens ORDER BY agent")
        return [row["agent"] for row in rows]

    async def agent_for(self, token: str) -> str | None:
        row = await self._database.fetch_one("SELECT agent FROM tokens WHERE token_sha256 = ?", (_digest(token),))
        return None if row is None else str(row["agent"])


class AgentTokenVerifier:
    """The SDK's `TokenVerifier`: a known token maps to its agent as the `client_id`.

    It opens the token store on first use and must be closed: the store's connection threads
    would otherwise keep the process alive after the server stops.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._store: TokenStore | None = None
        self._closed = False
        self._opening = asyncio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        async with self._opening:
            if self._closed:
                return None
            if self._store is None:
                self._store = await TokenStore.open(self._path)
            store = self._store
        agent = await store.agent_for(token)
        if agent is None:
            return None
        return AccessToken(token=token, client_id=agent, scopes=[])

    async def close(self) -> None:
        async with self._opening:
            self._closed = True
            store, self._store = self._store, None
        if store is not None:
            await store.close()


def calling_agent(local_agent: str | None) -> str:
    """The agent making the current tool call: its verified token, else the server's local agent."""
    access_token = get_access_token()
    if access_token is not None:
        return access_token.client_id
    if local_agent is not None:
        return local_agent
    raise PermissionDeniedError("no agent identity: connect with a bearer token from `aar tokens create NAME`")
