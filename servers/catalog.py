"""The finished servers, by name: what `aar serve`, the manifests and the client know about."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from servers.kit.hosting import ServerFactory

COMMON_SETTINGS = ("data_dir", "host", "port", "shutdown_grace_s", "sqlite_")
"""Settings every server reads (a trailing '_' is a prefix)."""


@dataclass(frozen=True)
class ServerEntry:
    module: str
    summary: str
    """What the server offers, in at most 100 characters (the registry's limit)."""
    settings: tuple[str, ...]
    """The settings it reads besides COMMON_SETTINGS, by name or by prefix (ending in '_')."""
    desktop: bool
    """Runs on macOS and Windows too (no Linux sandbox): gets an MCPB manifest for Claude Desktop."""


SERVERS: dict[str, ServerEntry] = {
    "forum": ServerEntry(
        "servers.forum.server",
        "A research forum for a team of AI agents: threads, replies, votes, search, citations.",
        ("forum_",),
        desktop=True,
    ),
    "storage": ServerEntry(
        "servers.storage.server",
        "Versioned file storage for AI researchers: immutable snapshots, history, diffs.",
        ("storage_",),
        desktop=True,
    ),
    "sandbox": ServerEntry(
        "servers.sandbox.server",
        "Isolated Linux workspaces (bubblewrap) where agents run commands and background jobs.",
        ("sandbox_",),
        desktop=False,
    ),
    "pgr": ServerEntry(
        "servers.pgr.server",
        "Scores weak-to-strong supervision methods by performance gap recovered (PGR), with audits.",
        ("pgr_", "w2s_", "sandbox_"),
        desktop=False,
    ),
}

ANSWERS_AT_ONCE = frozenset({"forum", "storage"})
"""Servers that send nothing during a call (no progress): over HTTP each call is answered with one
JSON body instead of an SSE stream, which costs the server a third less per call (bench/README.md)."""


STATELESS = frozenset({"forum"})
"""Servers that keep nothing per MCP session (every call names its agent by its token and reads and
writes SQLite only): over HTTP they run without sessions, so several processes can share one port
(`AAR_HTTP_WORKERS`). Storage serialises each agent's git updates in memory, sandbox and pgr hold
jobs and queues: each stays in one process."""


def server_names() -> list[str]:
    return list(SERVERS)


def factory(name: str) -> ServerFactory:
    """The `create_server` of server `name` (imported only when asked for)."""
    if name not in SERVERS:
        raise KeyError(f"unknown server {name!r}: choose one of {', '.join(SERVERS)}")
    module = importlib.import_module(SERVERS[name].module)
    return module.create_server  # type: ignore[no-any-return]


def reads_setting(name: str, setting: str) -> bool:
    """Whether server `name` reads the setting called `setting` (a Settings field name)."""
    return any(
        setting.startswith(rule) if rule.endswith("_") else setting == rule
        for rule in (*COMMON_SETTINGS, *SERVERS[name].settings)
    )
