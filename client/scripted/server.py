"""A local Messages API (POST /v1/messages) answered by the scripted researcher, with fault injection.

The client reaches it through the real anthropic SDK (base_url pointed here), so an offline run
exercises the same code path as a run with Claude. `aar run` serves it on a thread of its own
process; `python -m client.scripted.server --port N` serves it alone (the benchmark does, so
that the scripted model's CPU is not the client's), for any client that honours
ANTHROPIC_BASE_URL. Usage is estimated (4 characters a token),
and the stable prefix (system and tools) counts as written to the cache on an agent's first
request and read from it afterwards, as the real API would report it.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from client.scripted.faults import Fault, FaultPlan
from client.scripted.researcher import FAULT_ID_PREFIX, respond

logger = logging.getLogger(__name__)


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return JSONResponse(
        body, status_code=status, headers={"request-id": f"req_{uuid.uuid4().hex[:16]}", **(headers or {})}
    )


class ScriptedApi:
    """The app's state: a request counter and the cached prefixes of each agent."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.requests: collections.Counter[str] = collections.Counter()
        self._prefixes: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def app(self, started: threading.Event | None = None) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            if started is not None:
                started.set()
            yield

        return Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])], lifespan=lifespan)

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        agent = str((body.get("metadata") or {}).get("user_id") or "researcher")
        with self._lock:
            self.requests[agent] += 1
            number = self.requests[agent]
        if self.plan.latency_s:
            await anyio.sleep(self.plan.latency_s)
        fault = self.plan.fault_for(agent, number)
        if fault is not None:
            logger.info("scripted API: %s request %d gets fault %s", agent, number, fault.kind)
            injected = await self._fault(fault, body)
            if injected is not None:
                return injected
            content, stop = self._fault_tool(fault, number), "tool_use"
        else:
            content, stop = respond(agent, body)
        return JSONResponse(
            {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "scripted"),
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": self._usage(agent, body, content),
            },
            headers={"request-id": f"req_{uuid.uuid4().hex[:16]}"},
        )

    async def _fault(self, fault: Fault, body: dict[str, Any]) -> Response | None:
        match fault.kind:
            case "rate_limit":
                return _error(429, "rate_limit_error", "rate limited", {"retry-after": str(fault.retry_after_s)})
            case "overloaded":
                return _error(529, "overloaded_error", "Overloaded")
            case "server_error":
                return _error(500, "api_error", "Internal server error")
            case "malformed":
                return Response(b'{"type": "message", "content": [', media_type="application/json")
            case "incomplete":
                return JSONResponse({"type": "message", "role": "assistant", "id": "msg_incomplete"})
            case "hang":
                await anyio.sleep(3600)
        return None

    @staticmethod
    def _fault_tool(fault: Fault, number: int) -> list[dict[str, Any]]:
        return [
            {"type": "text", "text": f"(injected) calling {fault.tool}"},
            {
                "type": "tool_use",
                "id": f"{FAULT_ID_PREFIX}{number}_{uuid.uuid4().hex[:8]}",
                "name": fault.tool,
                "input": fault.input,
            },
        ]

    def _usage(self, agent: str, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        prefix = {"system": body.get("system"), "tools": body.get("tools")}
        prefix_tokens = _tokens(prefix)
        key = (agent, hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest())
        with self._lock:
            cached = key in self._prefixes
            self._prefixes.add(key)
        return {
            "input_tokens": _tokens(body.get("messages", [])),
            "output_tokens": _tokens(content),
            "cache_creation_input_tokens": 0 if cached else prefix_tokens,
            "cache_read_input_tokens": prefix_tokens if cached else 0,
        }


@contextlib.contextmanager
def serve_in_thread(plan: FaultPlan | None = None) -> Iterator[str]:
    """Serve the scripted API on a free loopback port in a daemon thread; yields its base URL.

    A thread of the client's own process, so it dies with the client (kill -9 included).
    """
    api = ScriptedApi(plan or FaultPlan())
    started = threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)  # connections made before uvicorn accepts wait in the backlog
    port = listener.getsockname()[1]
    config = uvicorn.Config(api.app(started), log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="scripted-api", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the scripted Messages API did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m client.scripted.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    app = ScriptedApi(FaultPlan.from_env()).app()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
