"""The servers measured at the wire: raw MCP streamable HTTP, no SDK client in the way.

`aar serve all --http` runs as a subprocess on loopback with a seeded forum (10,000 posts of
about 500 characters). For each session count (9, 100, 1,000 by default) every session is opened
once, as an agent would (its own bearer token, `initialize`, `notifications/initialized`), then
a fixed number of keep-alive connections (9 by default, as the study's harness was measured) send
raw JSON-RPC `tools/call` requests for a few seconds per tool, rotating over the sessions. A
response is read as JSON or as an SSE stream, whichever the server chose, and must carry a
result without `isError`. Prints calls/s, p50 and p99 per tool, and the server's resident memory
with every session open; writes JSON.

    .venv/bin/python bench/wire_bench.py [--sessions 9,100,1000] [--connections 9] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers_bench import WORDS, seed_forum
from servers.kit.identity import TokenStore
from tests.support import HttpServer

PROTOCOL_VERSION = "2025-06-18"
COMMON_WORD = WORDS[0]  # the head of the Zipf draw: in nearly every seeded post
RARE_WORD = WORDS[5_000]  # drawn only uniformly: in about one post in two hundred


class WireError(RuntimeError):
    """The server answered something other than a result: a protocol failure, which stops the bench."""


class ToolFailed(WireError):
    """The tool answered with `isError` (a limit or a time budget under load): counted, not fatal."""


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for MCP: POST, JSON or SSE back."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        assert self._reader is not None
        head = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{self._port}", f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        response_headers: dict[str, str] = {}
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if "content-length" in response_headers:
            payload = await self._reader.readexactly(int(response_headers["content-length"]))
        elif response_headers.get("transfer-encoding") == "chunked":
            payload = await self._chunks()
        else:
            payload = await self._reader.read()
            self._writer.close()
        if response_headers.get("connection") == "close":
            self._writer.close()
        return status, response_headers, payload

    async def _chunks(self) -> bytes:
        assert self._reader is not None
        parts = []
        while size := int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        await self._reader.readuntil(b"\r\n")  # the empty trailer
        return b"".join(parts)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def json_rpc_result(headers: dict[str, str], payload: bytes) -> dict[str, Any]:
    """The JSON-RPC response in a JSON body or in the `message` events of an SSE stream."""
    if headers.get("content-type", "").startswith("text/event-stream"):
        messages = [
            json.loads(line[5:])
            for line in payload.decode().splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
        responses = [message for message in messages if "result" in message or "error" in message]
        if not responses:
            raise WireError(f"no JSON-RPC response in the SSE stream: {payload[:300]!r}")
        message = responses[-1]
    else:
        message = json.loads(payload)
    if "error" in message:
        raise WireError(f"JSON-RPC error: {message['error']}")
    result: dict[str, Any] = message["result"]
    if result.get("isError"):
        raise ToolFailed(f"tool error: {result.get('content')}")
    return result


@dataclass
class Session:
    """One agent's MCP session on one server."""

    server: str
    token: str
    session_id: str = ""
    next_id: int = 1

    def headers(self) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {self.token}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": PROTOCOL_VERSION,
        }
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    async def request(self, connection: Connection, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode()
        self.next_id += 1
        status, headers, payload = await connection.post(f"/{self.server}/mcp", self.headers(), body)
        if status != 200:
            raise WireError(f"{method}: HTTP {status}: {payload[:300]!r}")
        return json_rpc_result(headers, payload)

    async def open(self, connection: Connection) -> None:
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "wire", "version": "0"},
        }
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}).encode()
        status, headers, payload = await connection.post(f"/{self.server}/mcp", self.headers(), body)
        if status != 200:
            raise WireError(f"initialize: HTTP {status}: {payload[:300]!r}")
        json_rpc_result(headers, payload)
        self.session_id = headers.get("mcp-session-id", "")  # none from a stateless server
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        status, _, payload = await connection.post(f"/{self.server}/mcp", self.headers(), note)
        if status != 202:
            raise WireError(f"notifications/initialized: HTTP {status}: {payload[:300]!r}")


Arguments = Callable[[int], dict[str, Any]]
SNAPSHOT: dict[str, str] = {}


def tools() -> list[tuple[str, str, str, Arguments]]:
    """(label, server, tool, arguments for call number n) of each measured tool."""
    return [
        (
            "forum.post",
            "forum",
            "post",
            lambda n: {"title": f"wire {n}", "body": "a short finding " * 30, "kind": "note"},
        ),
        ("forum.search common word", "forum", "search", lambda n: {"query": COMMON_WORD, "limit": 20}),
        ("forum.search rare word", "forum", "search", lambda n: {"query": RARE_WORD, "limit": 20}),
        ("forum.feed 100 new posts", "forum", "feed", lambda n: {"since": 9_900, "limit": 100}),
        ("storage.read_file", "storage", "read_file", lambda n: {"snapshot": SNAPSHOT["id"], "path": "method.py"}),
    ]


async def open_sessions(port: int, server: str, tokens: list[str], connections: int) -> list[Session]:
    sessions = [Session(server, token) for token in tokens]
    queue = iter(sessions)

    async def opener() -> None:
        connection = Connection(port)
        for session in queue:
            await session.open(connection)
        connection.close()

    await asyncio.gather(*(opener() for _ in range(connections)))
    return sessions


async def load(
    port: int, sessions: list[Session], tool: str, arguments: Arguments, connections: int, seconds: float
) -> dict[str, float]:
    """`connections` keep-alive connections call `tool` back to back for `seconds`, rotating over `sessions`."""
    latencies: list[float] = []
    failures: list[str] = []
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def worker(first: int) -> None:
        connection = Connection(port)
        rotation = itertools.cycle(sessions[first::connections] or sessions)
        while time.perf_counter() < deadline:
            session = next(rotation)
            start = time.perf_counter()
            try:
                await session.request(connection, "tools/call", {"name": tool, "arguments": arguments(next(counter))})
            except ToolFailed as failure:
                failures.append(str(failure))
            latencies.append(time.perf_counter() - start)
        connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(first) for first in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "calls": len(latencies),
        "errors": len(failures),
        "per_second": (len(latencies) - len(failures)) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds that process `pid` has used: the server's cost, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` and its children (the sandbox's helpers, if any), in MiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


async def create_tokens(data_dir: Path, count: int) -> list[str]:
    store = await TokenStore.open(data_dir / "identity.sqlite")
    try:
        return [await store.create(f"agent-{number}") for number in range(count)]
    finally:
        await store.close()


async def run(
    session_counts: list[int], connections: int, seconds: float, posts: int, repeats: int, only: str
) -> dict[str, Any]:
    # throughput, not the per-agent write limits, is measured here
    os.environ |= {"AAR_FORUM_POSTS_PER_MINUTE": str(10**9), "AAR_FORUM_POST_BYTES_PER_HOUR": str(10**12)}
    rows: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aar-wire-") as scratch:
        data_dir = Path(scratch) / "data"
        await seed_forum(data_dir, posts)
        tokens = await create_tokens(data_dir, max(session_counts))
        http = HttpServer(data_dir).start()
        assert http.process is not None
        try:
            idle = rss_mib(http.process.pid)
            saver = Session("storage", tokens[0])
            await saver.open(Connection(http.port))
            saved = await saver.request(
                Connection(http.port), "tools/call",
                {"name": "save", "arguments": {"files": {"method.py": "x = 1\n" * 200}, "message": "bench"}},
            )  # fmt: skip
            SNAPSHOT["id"] = saved["structuredContent"]["id"]
            for count in session_counts:
                opened = time.perf_counter()
                by_server = {
                    server: await open_sessions(http.port, server, tokens[:count], connections)
                    for server in ("forum", "storage")
                }
                opening_s = time.perf_counter() - opened
                resident = rss_mib(http.process.pid)
                memory.append({"sessions": count, "servers": 2, "rss_mib": resident, "idle_rss_mib": idle,
                               "open_s": opening_s})  # fmt: skip
                print(f"{count} sessions on forum and storage: RSS {resident:.0f} MiB (idle {idle:.0f}),"
                      f" opened in {opening_s:.1f} s", file=sys.stderr)  # fmt: skip
                for label, server, tool, arguments in tools():
                    if only not in label:
                        continue
                    runs = []
                    for _ in range(repeats):
                        used = cpu_s(http.process.pid)
                        run = await load(http.port, by_server[server], tool, arguments, connections, seconds)
                        run["server_cpu_ms"] = 1000 * (cpu_s(http.process.pid) - used) / run["calls"]
                        runs.append(run)
                    row = {
                        "sessions": count,
                        "tool": label,
                        "calls": sum(run["calls"] for run in runs),
                        "errors": sum(run["errors"] for run in runs),
                        **{
                            key: statistics.median(run[key] for run in runs)
                            for key in ("per_second", "p50_ms", "p99_ms", "server_cpu_ms")
                        },
                    }
                    rows.append(row)
                    print(f"{count:5} {label:26} {row['per_second']:7.0f}/s  p50 {row['p50_ms']:6.1f} ms"
                          f"  p99 {row['p99_ms']:6.1f} ms  server CPU {row['server_cpu_ms']:5.2f} ms/call"
                          + (f"  {row['errors']} tool errors" if row["errors"] else ""), file=sys.stderr)  # fmt: skip
        finally:
            http.stop()
    return {"connections": connections, "seconds": seconds, "seed_posts": posts, "rows": rows, "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/wire.json"))
    parser.add_argument("--sessions", default="9,100,1000", help="Session counts, comma-separated.")
    parser.add_argument("--connections", type=int, default=9, help="Concurrent keep-alive connections.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Load per tool per run.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per tool; the table shows their medians.")
    parser.add_argument("--only", default="", help="Measure only the tools whose label contains this text.")
    parser.add_argument("--posts", type=int, default=10_000, help="Posts in the forum before measuring.")
    args = parser.parse_args()
    counts = [int(count) for count in args.sessions.split(",")]
    result = asyncio.run(run(counts, args.connections, args.seconds, args.posts, args.repeats, args.only))
    print(f"{'sessions':>8} {'tool':26} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>7}")
    for row in result["rows"]:
        print(
            f"{row['sessions']:8} {row['tool']:26} {row['per_second']:8.0f} "
            f"{row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['server_cpu_ms']:7.2f}"
        )
    for entry in result["memory"]:
        print(f"{entry['sessions']:8} sessions x 2 servers open: server RSS {entry['rss_mib']:.0f} MiB"
              f" (idle {entry['idle_rss_mib']:.0f} MiB)")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
