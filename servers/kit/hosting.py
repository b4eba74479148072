"""How a server is built and where it runs: stdio, or all in one uvicorn process over HTTP.

Every server package exposes `create_server(settings, local_agent=...)`. With a
`local_agent` (stdio, in-memory tests) the identity is fixed; without one the server
requires bearer tokens, which only the HTTP transport can carry (`http_app` puts every
server behind the bearer gate).

A server that cannot start says why on stderr in one line and exits non-zero at once, and
a stop signal ends the process within `shutdown_grace_s` whatever is still running: every
acknowledged write is already committed, jobs die with the process and are marked lost on
the next start, so the deadline loses nothing that a kill -9 would not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from servers.kit.bearer import require_agent_token
from servers.kit.identity import AgentTokenVerifier
from servers.kit.settings import Settings

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


State = TypeVar("State")


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
    """An `MCPServer` with this project's conventions; its lifespan's failure names the server.

    Identity is not the server's business: over HTTP `http_app` checks bearer tokens in front of
    it, and over stdio `local_agent` is fixed by the caller of `create_server`.
    """
    return MCPServer(
        name,
        instructions=instructions,
        version=VERSION,
        lifespan=_naming_start_failures(name, lifespan),
        log_level="WARNING",
    )


def lifespan_state(ctx: Context, kind: type[State]) -> State:
    """The state a server's lifespan yielded, checked to be a `kind`: a tool reads its store through this."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, kind):
        raise TypeError(f"the lifespan state is a {type(state).__name__}, not a {kind.__name__}")
    return state


class ServerStartError(RuntimeError):
    """A server's lifespan failed before it served anything; the message names the server and the cause."""


def _naming_start_failures(
    name: str, lifespan: Callable[[MCPServer[Any]], contextlib.AbstractAsyncContextManager[Any]]
) -> Callable[[MCPServer[Any]], contextlib.AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def wrapped(server: MCPServer[Any]) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                state = await stack.enter_async_context(lifespan(server))
            except Exception as error:
                raise ServerStartError(f"the {name} server cannot start: {_cause(error)}") from error
            yield state

    return wrapped


def _cause(error: BaseException) -> BaseException:
    """The first leaf of an exception group (anyio wraps what a task raised), else `error` itself."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def http_app(
    servers: Mapping[str, MCPServer[Any]],
    identity_db: Path,
    *,
    json_response: Collection[str] = (),
    stateless: Collection[str] = (),
) -> Starlette:
    """One Starlette app serving each server at `/NAME/mcp` behind the bearer gate, plus `/healthz`.

    The servers named in `json_response` answer each call with one JSON body rather than an SSE
    stream: cheaper, and fine for a server that sends no notification during a call. Those named
    in `stateless` keep no MCP session: each request stands alone (its bearer token names the
    agent), so any of several processes sharing the port can answer it.

    A mounted app's own lifespan never runs, so this app's lifespan enters every
    server's session manager (which in turn runs the server's lifespan), and closes the
    token store that the gate opened.
    """
    verifier = AgentTokenVerifier(identity_db)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(verifier.close)
            try:
                for server in servers.values():
                    await stack.enter_async_context(server.session_manager.run())
            except Exception as error:
                app.state.start_failure = error  # uvicorn only logs it; `serve_http` says it in one line
                raise
            yield

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "servers": sorted(servers)})

    routes: list[Route | Mount] = [Route("/healthz", healthz)]
    routes += [
        Mount(
            f"/{name}",
            app=require_agent_token(
                server.streamable_http_app(
                    streamable_http_path="/mcp", json_response=name in json_response, stateless_http=name in stateless
                ),
                verifier,
            ),
        )
        for name, server in servers.items()
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve_stdio(name: str, server: MCPServer[Any], settings: Settings) -> int:
    """Serve one server over stdio until its client goes away; the exit status of the process.

    A failed start exits at once: a half-opened lifespan may leave threads (database
    connections) that would otherwise keep the process alive without ever answering.
    """
    try:
        server.run("stdio")
    except KeyboardInterrupt:
        _exit_after(settings.shutdown_grace_s, 128 + signal.SIGINT)
        return 128 + signal.SIGINT
    except Exception as error:
        _fail(error, f"the {name} server stopped")
    _exit_after(settings.shutdown_grace_s, 0)  # the client went away: nothing may keep the process alive
    return 0


def serve_http(
    servers: Mapping[str, MCPServer[Any]],
    settings: Settings,
    *,
    json_response: Collection[str] = (),
    stateless: Collection[str] = (),
) -> int:
    """Serve `servers` over streamable HTTP until a stop signal, announcing each URL on stdout (see `http_app`).

    With `settings.http_workers` above 1 (stateless servers only) the port is bound once and that
    many processes, forked before any of them starts a thread, accept on it: the kernel spreads
    connections over them and each runs the servers' lifespans (SQLite's locking keeps their
    writes apart, as it does for a stdio server beside an HTTP one).
    """
    workers = settings.http_workers
    if workers > 1 and (kept := sorted(set(servers) - set(stateless))):
        print(
            f"error: AAR_HTTP_WORKERS={workers} needs servers without per-session state;"
            f" {', '.join(kept)} must run in one process: serve it on its own port with AAR_HTTP_WORKERS=1",
            file=sys.stderr,
            flush=True,
        )
        return 2
    for name in servers:
        print(f"{name}: http://{settings.host}:{settings.port}{mcp_path(name)}", flush=True)
    print("each agent needs a bearer token: `aar tokens create NAME`; Ctrl-C stops", file=sys.stderr, flush=True)
    # Without sessions each call costs the server more (about a millisecond, bench/README.md), so a
    # server goes stateless only when it is spread over processes.
    app = http_app(
        servers, settings.identity_db, json_response=json_response, stateless=stateless if workers > 1 else ()
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]  # a float works
    )
    sockets = [config.bind_socket()] if workers > 1 else None
    children: list[int] = []
    for _ in range(workers - 1):
        pid = _fork_worker()
        if pid == 0:  # a worker: it serves, and stops nobody
            children = []
            break
        children.append(pid)
    try:
        _DeadlineServer(config, settings.shutdown_grace_s).run(sockets=sockets)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled
        return 128 + signal.SIGINT
    except SystemExit:  # uvicorn's answer to a failed lifespan
        _fail(getattr(app.state, "start_failure", RuntimeError("see the log above")), "the servers cannot start")
    finally:
        _stop_workers(children, settings.shutdown_grace_s)
    return 0


def _fork_worker() -> int:
    """Fork one more serving process: the child's pid in the parent, 0 in the child.

    A worker ends with its parent (SIGTERM on the parent's death), so none outlives a killed server.
    """
    pid = os.fork()
    if pid == 0:
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the line above ran
            os._exit(0)
    return pid


def _set_parent_death_signal(sig: int) -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, sig)


def _stop_workers(pids: list[int], grace_s: float) -> None:
    """Stop the forked workers (in the parent): SIGTERM, then SIGKILL for any still there after the grace."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 1
    for pid in pids:
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


class _DeadlineServer(uvicorn.Server):
    """uvicorn, whose stop has a deadline: `grace_s` after a stop signal the process exits anyway."""

    def __init__(self, config: uvicorn.Config, grace_s: float) -> None:
        super().__init__(config)
        self._grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        _exit_after(self._grace_s, 128 + sig)


_deadline_lock = threading.Lock()
_deadline: threading.Timer | None = None


def _exit_after(grace_s: float, status: int) -> None:
    """Arm (once) a timer that ends the process if it is still alive `grace_s` from now."""
    global _deadline  # noqa: PLW0603 one timer per process, armed once under a lock
    with _deadline_lock:
        if _deadline is not None:
            return

        def expire() -> None:
            lingering = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
            print(
                f"stopping took longer than {grace_s:g} s (AAR_SHUTDOWN_GRACE_S); exiting now"
                + (f" (still running: {', '.join(lingering)})" if lingering else ""),
                file=sys.stderr,
                flush=True,
            )
            os._exit(status)

        _deadline = threading.Timer(grace_s, expire)
        _deadline.daemon = True
        _deadline.start()


def _fail(error: BaseException, context: str) -> None:
    """Say on stderr in one line why the server could not go on, then end the process at once."""
    cause = _cause(error)
    message = str(cause) if isinstance(cause, ServerStartError) else f"{context}: {cause}"
    logger.debug("server failure", exc_info=error)
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def configure_logging(level: int = logging.INFO) -> None:
    """Logs go to stderr: a stdio server's stdout belongs to the protocol."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
