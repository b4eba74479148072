"""How fast forum search could be at the wire on this machine: the floor under the MCP server.

The forum's own `search` (servers/forum/store.py) is served two ways on loopback, one after the
other, over the same 10,000 posts and under the same load as `anchor_bench.py` (`wrk -t1 -c9`, the
word in every post and a rare word):

- `aar serve forum --http`: MCP streamable HTTP, nine sessions with their own bearer tokens;
- bare: one uvicorn process whose only route parses the same JSON-RPC body, calls the same
  `ForumStore.search` and answers the same result shape, with no MCP, no session and no token.

The bare server is what any Python server over this store would cost at best: if it cannot keep
nine saturating clients under a p50, no change to the MCP path can. Also prints the store alone,
called by nine concurrent tasks in one process (no HTTP), as `search_bench.py` measures it.

    .venv/bin/python bench/floor_bench.py [--seconds 8] [--rounds 2] [--json bench/results/floor.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.anchor_bench import COMMON_WORD, RARE_WORD, Forum, forum_loads, request_lines, wait_for, wrk
from servers.forum.store import ForumStore
from servers.kit.settings import Settings
from tests.support import free_port

WORDS = {"search, common word": COMMON_WORD, "search, rare word": RARE_WORD}


def bare_app(database: Path) -> Any:
    """An ASGI app answering JSON-RPC `tools/call` for `search` straight from the store."""
    store: ForumStore | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal store
        if scope["type"] == "lifespan":  # startup, then shutdown
            await receive()
            store = await ForumStore.open(database, settings=Settings())
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await store.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = b"{}"
        if body:
            request = json.loads(body)
            arguments = request["params"]["arguments"]
            assert store is not None
            results = await store.search(arguments["query"], limit=arguments["limit"], tag=None, kind=None, author=None)
            result = {"content": [{"type": "text", "text": results.model_dump_json()}],
                      "structuredContent": results.model_dump(mode="json"), "isError": False}  # fmt: skip
            answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    return app


def serve_bare(database: Path, port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(database), host="127.0.0.1", port=port, log_level="warning", loop="asyncio")


def bare_loads() -> dict[str, str]:
    loads = {}
    for label, word in WORDS.items():
        bodies = [json.dumps({"jsonrpc": "2.0", "id": number, "method": "tools/call",
                              "params": {"name": "search", "arguments": {"query": word, "limit": 20}}})
                  for number in range(1000)]  # fmt: skip
        loads[label] = request_lines("POST", "/", {"content-type": "application/json"}, bodies)
    return loads


async def store_alone(database: Path, seconds: float) -> dict[str, dict[str, float]]:
    """Nine concurrent callers of the store in this process, as many searches as they can."""
    store = await ForumStore.open(database, settings=Settings())
    figures = {}
    try:
        for label, word in WORDS.items():
            latencies: list[float] = []
            end = time.perf_counter() + seconds

            async def caller(word: str = word, latencies: list[float] = latencies, end: float = end) -> None:
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    await store.search(word, limit=20, tag=None, kind=None, author=None)
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(caller() for _ in range(9)))
            figures[label] = {"per_second": len(latencies) / seconds, "p50_ms": 1000 * statistics.median(latencies)}
    finally:
        await store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("bench/results/floor.json"))
    parser.add_argument("--serve-bare", nargs=2, metavar=("DATABASE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(Path(args.serve_bare[0]), int(args.serve_bare[1]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aar-floor-") as name:
        scratch = Path(name)
        forum = Forum(scratch)
        print(f"seeding the forum with {args.posts} posts", file=sys.stderr)
        asyncio.run(forum.prepare(args.posts))
        database = forum.data_dir / "forum.sqlite"
        port = free_port()
        bare = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(database), str(port)],
                                env=os.environ.copy())  # fmt: skip
        forum.start()
        try:
            wait_for(f"http://127.0.0.1:{port}/", bare, "the bare server")
            for round_number in range(args.rounds):
                loads = {"mcp": forum_loads(forum.sessions()), "bare": bare_loads()}
                for label in WORDS:
                    for server, server_port in (("mcp", forum.port), ("bare", port)):
                        result = wrk(server_port, loads[server][label], args.seconds, scratch)
                        rows.append({"query": label, "server": server, "round": round_number, **result})
                        print(
                            f"{label:22} {server:5} {result['per_second']:7.0f}/s  p50 {result['p50_ms']:6.1f} ms"
                            f"  p99 {result['p99_ms']:6.1f} ms  failures {result['failures']}",
                            file=sys.stderr,
                        )
        finally:
            forum.stop()
            bare.terminate()
            bare.wait(20)
        alone = asyncio.run(store_alone(database, args.seconds))
    for label, figures in alone.items():
        print(f"{label:22} store alone, nine callers: {figures['per_second']:7.0f}/s  p50 {figures['p50_ms']:5.1f} ms",
              file=sys.stderr)  # fmt: skip
    load = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "store_alone": alone, "load": load, "posts": args.posts}, indent=2))
    print(f"load average {load[0]:.1f}; wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
