"""Serving the console inside a running event loop (beside a live team) or on its own (`aar console RUN`)."""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import anyio
import uvicorn
from starlette.applications import Starlette

from client.console.access import Access

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8710


@dataclass
class ConsoleOptions:
    """Where the console listens and who may use it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    operators: list[str] = field(default_factory=lambda: [getpass.getuser()])

    def access(self) -> Access:
        return Access(self.host, self.operators)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: Ctrl-C belongs to the run, not to its console."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on `port`, or on a free port if that one is taken (the run says which)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        if error.errno != errno.EADDRINUSE or port == 0:
            sock.close()
            raise
        logger.warning("port %d is in use; the console takes a free port instead", port)
        sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def console_urls(options: ConsoleOptions, port: int, tokens: dict[str, str]) -> list[str]:
    """The address(es) to open: one per operator, with its token, when a token is needed."""
    host = f"[{options.host}]" if ":" in options.host else options.host
    base = f"http://{host}:{port}/"
    return [f"{base}?token={token}  ({operator})" for operator, token in tokens.items()] or [base]


@contextlib.asynccontextmanager
async def console_running(
    make_app: Callable[[Access], Starlette], options: ConsoleOptions, announce: Callable[[str], None]
) -> AsyncIterator[int]:
    """Serve the console in this event loop while the block runs; yields the port it listens on."""
    access = options.access()
    tokens = access.issue_tokens()
    sock = _bind(options.host, options.port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(make_app(access), log_level="warning", lifespan="on", access_log=False)
    server = _EmbeddedServer(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        while not server.started and not server.should_exit:
            await anyio.sleep(0.05)
        for url in console_urls(options, port, tokens):
            announce(f"console: {url}")
        try:
            yield port
        finally:
            server.should_exit = True
    sock.close()
