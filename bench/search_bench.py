"""Forum search under nine concurrent clients, side by side with a plain LIKE scan, and the worst query.

10,000 posts of about 500 characters of real words (Zipf-like, so the commonest word is in every
post). Nine callers search concurrently on the server's own store (its pool of reader connections),
then through the MCP tool in memory; then one hostile caller sends the costliest accepted query
while eight search normally, to compare their latency with and without it.

    .venv/bin/python bench/search_bench.py [--json bench/results/search.json] [--calls 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers_bench import AGENTS, seed_forum
from servers.forum.store import ForumStore
from servers.kit.settings import Settings
from tests.support import memory_client

EVERY_POST = "aardvark"  # the commonest word of the vocabulary: present in every seeded post
QUERIES = {
    "word in every post": EVERY_POST,
    "two common words": "aardvark abalone",
    "rare word": "carnation",
    "prefix": "aar*",
}
HOSTILE = "abor* abom* abra* abst* aard* abal* carn* grap*"  # eight unindexed prefixes: the costliest accepted
Search = Callable[[str], Awaitable[Any]]


def stats(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {
        "calls": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def concurrently(searches: list[tuple[Search, str]], calls: int) -> list[list[float]]:
    """Each (search, query) pair is one caller making `calls` calls; the latencies of each caller."""

    async def caller(search: Search, query: str) -> list[float]:
        await search(query)  # warm
        latencies = []
        for _ in range(calls):
            start = time.perf_counter()
            await search(query)
            latencies.append(time.perf_counter() - start)
        return latencies

    return list(await asyncio.gather(*(caller(search, query) for search, query in searches)))


async def run(calls: int, posts: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def report(where: str, what: str, latencies: list[float]) -> None:
        row = {"where": where, "query": what, **stats(latencies)}
        rows.append(row)
        print(f"{where:13} {what:34} p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="aar-bench-") as scratch:
        data_dir = Path(scratch)
        await seed_forum(data_dir, posts)
        store = await ForumStore.open(data_dir / "forum.sqlite", settings=Settings(data_dir=data_dir))
        database = store._database
        every = await database.fetch_one("SELECT count(*) AS n FROM posts WHERE body LIKE ?", (f"%{EVERY_POST}%",))
        print(f"{posts} posts; {every['n'] if every else 0} contain {EVERY_POST!r}", file=sys.stderr)

        async def fts(query: str) -> Any:
            return await store.search(query, limit=10, tag=None, kind=None, author=None)

        async def like(query: str) -> Any:
            clauses = " AND ".join("(title LIKE ? OR body LIKE ?)" for _ in query.split())
            params = [pattern for word in query.split() for pattern in (f"%{word.rstrip('*')}%",) * 2]
            return await database.fetch_all(f"SELECT * FROM posts WHERE {clauses} ORDER BY id DESC LIMIT 10", params)

        for name, query in QUERIES.items():
            for where, search in (("store fts", fts), ("store like", like)):
                per_caller = await concurrently([(search, query)] * len(AGENTS), calls)
                report(where, name, [t for caller in per_caller for t in caller])
        for where, search in (("store fts", fts), ("store like", like)):
            alone = await concurrently([(search, HOSTILE)], calls)
            report(where, "hostile, alone", alone[0])
            normal = [(search, QUERIES["two common words"])] * (len(AGENTS) - 1)
            loaded = await concurrently([(search, HOSTILE), *normal], calls)
            report(where, "hostile, with eight others", loaded[0])
            report(where, "the eight others, beside it", [t for caller in loaded[1:] for t in caller])
        await store.close()

        async with memory_client("forum", data_dir, AGENTS[0]) as client:

            async def tool(query: str) -> Any:
                result = await client.call_tool("search", {"query": query, "limit": 10})
                assert not result.is_error, result.content
                return result

            for name, query in QUERIES.items():
                per_caller = await concurrently([(tool, query)] * len(AGENTS), calls // 2)
                report("mcp memory", name, [t for caller in per_caller for t in caller])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/search.json"))
    parser.add_argument("--calls", type=int, default=100, help="Searches per caller per measurement.")
    parser.add_argument("--posts", type=int, default=10_000)
    args = parser.parse_args()
    rows = asyncio.run(run(args.calls, args.posts))
    print(f"{'where':13} {'query':34} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['where']:13} {row['query']:34} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"agents": len(AGENTS), "posts": args.posts, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
