"""Forum and storage throughput and latency, in memory and over streamable HTTP on loopback.

Nine concurrent clients (one per agent, as in a team run) call `post`, `feed` and `search`
(on 10,000 posts) and storage `save` and `read_file`. Prints a table and writes JSON.

    .venv/bin/python bench/servers_bench.py [--json bench/results/servers.json] [--calls 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.forum.store import ForumStore
from servers.w2s.tasks import load_task
from tests.support import HttpServer, memory_client

AGENTS = [f"agent-{n}" for n in range(9)]
CorpusClient = Callable[[str, str], AbstractAsyncContextManager[Client]]


def vocabulary() -> list[str]:
    """Real words for a realistic index: the lemmas of the default task (about 6,000)."""
    task = load_task("wordnet-living")
    return sorted({word for text in task.texts for word in text.split() if word.isalpha()})


WORDS = vocabulary()


def words(seed: int, count: int) -> str:
    """`count` words, Zipf-like: a few common ones, a long tail, as in real posts."""
    rng = random.Random(seed)
    return " ".join(WORDS[min(int(rng.paretovariate(1.1)) - 1, len(WORDS) - 1)] if rng.random() < 0.5
                    else rng.choice(WORDS) for _ in range(count))  # fmt: skip


async def seed_forum(data_dir: Path, posts: int) -> None:
    """Fill the forum directly (not a measurement) so feed and search run on a realistic size."""
    store = await ForumStore.open(data_dir / "forum.sqlite")
    for number in range(posts):
        await store.create_post(
            author=AGENTS[number % 9], kind="finding", title=words(-number, 6), body=words(number, 60), tags=[]
        )
    await store.close()


async def measure(
    connect: CorpusClient, server: str, calls: int, make_call: Callable[[Client, str, int], Awaitable[Any]]
) -> dict[str, float]:
    """Nine agents each make `calls` calls concurrently; latency per call and total throughput."""
    latencies: list[float] = []

    async def agent(name: str) -> None:
        async with connect(server, name) as client:
            await make_call(client, name, -1)  # warm the connection
            for number in range(calls):
                start = time.perf_counter()
                result = await make_call(client, name, number)
                latencies.append(time.perf_counter() - start)
                assert not result.is_error, result.content

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for name in AGENTS:
            group.start_soon(agent, name)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "calls": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def post(client: Client, agent: str, number: int) -> Awaitable[Any]:
    return client.call_tool("post", {"title": f"{agent} {number}", "body": "a short finding", "kind": "note"})


def feed(client: Client, agent: str, number: int) -> Awaitable[Any]:
    return client.call_tool("feed", {"since": max(0, 9_000 + number * 7), "limit": 50})


def search(client: Client, agent: str, number: int) -> Awaitable[Any]:
    return client.call_tool("search", {"query": words(hash(agent) + number, 2), "limit": 10})


def save(client: Client, agent: str, number: int) -> Awaitable[Any]:
    return client.call_tool("save", {"files": {"method.py": f"# {number}\n" + "x = 1\n" * 200}, "message": "bench"})


async def read_file(client: Client, agent: str, number: int) -> Any:
    if not hasattr(read_file, "snapshot"):
        saved = await save(client, agent, 0)
        read_file.snapshot = saved.structured_content["id"]  # type: ignore[attr-defined]
    return await client.call_tool("read_file", {"snapshot": read_file.snapshot, "path": "method.py"})  # type: ignore[attr-defined]


OPERATIONS = [
    ("forum", "post", post),
    ("forum", "feed", feed),
    ("forum", "search", search),
    ("storage", "save", save),
    ("storage", "read_file", read_file),
]


async def run(calls: int, seed_posts: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # throughput, not the per-agent write limits, is measured here
    os.environ |= {"AAR_FORUM_POSTS_PER_MINUTE": str(10**9), "AAR_FORUM_POST_BYTES_PER_HOUR": str(10**12)}
    with tempfile.TemporaryDirectory(prefix="aar-bench-") as scratch:
        for transport in ("memory", "http"):
            data_dir = Path(scratch) / transport / "data"
            await seed_forum(data_dir, seed_posts)
            http = HttpServer(data_dir).start() if transport == "http" else None
            try:
                if http is not None:
                    for agent in AGENTS:
                        http.token(agent)

                def connect(
                    server: str, agent: str, data_dir: Path = data_dir, http: HttpServer | None = http
                ) -> AbstractAsyncContextManager[Client]:
                    return http.client(server, agent) if http is not None else memory_client(server, data_dir, agent)

                for server, name, operation in OPERATIONS:
                    if hasattr(read_file, "snapshot"):
                        del read_file.snapshot
                    stats = await measure(connect, server, calls, operation)
                    rows.append({"transport": transport, "tool": f"{server}.{name}", **stats})
                    print(
                        f"{transport:7} {server}.{name:10} {stats['per_second']:8.0f}/s  p50 {stats['p50_ms']:6.1f} ms"
                        f"  p99 {stats['p99_ms']:6.1f} ms",
                        file=sys.stderr,
                    )
            finally:
                if http is not None:
                    http.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/servers.json"))
    parser.add_argument("--calls", type=int, default=60, help="Calls per agent per tool (nine agents).")
    parser.add_argument("--posts", type=int, default=10_000, help="Posts in the forum before measuring.")
    args = parser.parse_args()
    rows = asyncio.run(run(args.calls, args.posts))
    print(f"{'transport':9} {'tool':18} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(
            f"{row['transport']:9} {row['tool']:18} {row['per_second']:8.0f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"agents": len(AGENTS), "seed_posts": args.posts, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
