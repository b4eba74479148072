"""The finished servers, by name: what `aar serve`, the manifests and the client know about."""

from __future__ import annotations

import importlib

from servers.kit.hosting import ServerFactory

SERVER_MODULES: dict[str, str] = {
    "forum": "servers.forum.server",
    "storage": "servers.storage.server",
    "sandbox": "servers.sandbox.server",
    "pgr": "servers.pgr.server",
}

ANSWERS_AT_ONCE = frozenset({"forum", "storage"})
"""Servers that send nothing during a call (no progress): over HTTP each call is answered with one
JSON body instead of an SSE stream, which costs the server a third less per call (bench/README.md)."""


def server_names() -> list[str]:
    return list(SERVER_MODULES)


def factory(name: str) -> ServerFactory:
    """The `create_server` of server `name` (imported only when asked for)."""
    if name not in SERVER_MODULES:
        raise KeyError(f"unknown server {name!r}: choose one of {', '.join(SERVER_MODULES)}")
    module = importlib.import_module(SERVER_MODULES[name])
    return module.create_server  # type: ignore[no-any-return]
