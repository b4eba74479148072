"""Nine agents, one hostile: how much slower do the other eight get?

`aar serve all --http` runs as its own process on loopback, with the default limits, over a forum
of 10,000 posts. Eight agents work as researchers do, round after round: read the feed, search,
read a snapshot file, run a short command and a CPU-bound one, run a short job to the end, and now
and then post.
First they run alone (unloaded), then beside a ninth agent attacking one resource at a time:

- worst search: the costliest accepted query (eight unindexed prefixes), four calls at a time;
- post flood: 50 kB posts as fast as the server answers, four at a time;
- job-slot flood: `sleep 600` jobs started until refused, and started again and again;
- log flood: jobs printing as fast as they can (`yes`) into their logs, restarted as they end;
- CPU flood: as many jobs as it may run, each keeping four processes busy (`yes > /dev/null`).

The attacker is its own process, as a real one would be, so that its client's work is not done
on the researchers' event loop. The researchers also run alone before and after each attack, and
each attack is compared with the mean of those two unloaded runs, so that a machine shared with
other work (its load drifts) does not pass for the attack's effect. For each of the eight agents'
operations it prints the p50 and p90 latency and the p50 against the unloaded runs beside it.

    .venv/bin/python bench/fairness_bench.py [--json bench/results/fairness.json] [--rounds 6] [--only ATTACK]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search_bench import HOSTILE
from bench.servers_bench import seed_forum, words
from tests.support import HttpServer

RESEARCHERS = [f"researcher-{n}" for n in range(8)]
"""Not the seeded posts' authors: those posts, just written, would count toward the post limits."""
ATTACKER = "hostile"
CPU_COMMAND = "python3 -c 'sum(range(3_000_000))'"
"""A researcher's CPU-bound command (about 0.1 s of CPU on a quiet core)."""
POST_EVERY = 3
"""A researcher posts every third round, well inside the per-agent post limit of the defaults."""
Attack = Callable[["Agent"], Coroutine[Any, Any, None]]


class RefusedError(Exception):
    """A researcher's call came back as an error."""


class Agent:
    """One agent's connections to the forum, storage and sandbox servers."""

    def __init__(self, name: str, forum: Client, storage: Client, sandbox: Client) -> None:
        self.name, self.forum, self.storage, self.sandbox = name, forum, storage, sandbox

    async def call(self, client: Client, tool: str, arguments: dict[str, Any]) -> Any:
        """The structured result of a call that must succeed."""
        result = await client.call_tool(tool, arguments)
        if result.is_error:
            raise RefusedError(f"{self.name} {tool}: {' '.join(getattr(part, 'text', '') for part in result.content)}")
        return result.structured_content


@contextlib.asynccontextmanager
async def connected(port: int, token: str, name: str) -> AsyncIterator[Agent]:
    """`name`'s clients of the servers at `port` on loopback, with its bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                Client(streamable_http_client(f"http://127.0.0.1:{port}/{server}/mcp", http_client=http))
            )
            for server in ("forum", "storage", "sandbox")
        ]
        yield Agent(name, *clients)


async def researcher(
    agent: Agent, rounds: int, snapshot: str, latencies: dict[str, list[float]], refusals: dict[str, int]
) -> None:
    """Round after round of what a researcher does, each operation timed (a refusal counts, and is timed too)."""
    cursor = 9_000

    async def timed(operation: str, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return await call
        except RefusedError as refused:
            refusals[operation] = refusals.get(operation, 0) + 1
            print(refused, file=sys.stderr)
            return None
        finally:
            latencies.setdefault(operation, []).append(time.perf_counter() - start)

    async def job_to_the_end() -> None:
        job = await agent.call(agent.sandbox, "start_job", {"name": "check", "command": "true"})
        while job["state"] in ("queued", "running"):
            await anyio.sleep(0.05)
            job = await agent.call(agent.sandbox, "job_status", {"job_id": job["id"]})

    for number in range(rounds):
        page = await timed("forum.feed", agent.call(agent.forum, "feed", {"since": cursor, "limit": 50}))
        cursor = page["next_cursor"] if page else cursor
        query = {"query": words(hash(agent.name) + number, 2), "limit": 10}
        await timed("forum.search", agent.call(agent.forum, "search", query))
        file = {"snapshot": snapshot, "path": "method.py"}
        await timed("storage.read_file", agent.call(agent.storage, "read_file", file))
        await timed("sandbox.exec", agent.call(agent.sandbox, "exec", {"command": "true"}))
        await timed("sandbox.exec (CPU-bound)", agent.call(agent.sandbox, "exec", {"command": CPU_COMMAND}))
        await timed("sandbox.job (start to finished)", job_to_the_end())
        if number % POST_EVERY == 0:
            post = {"title": f"{agent.name} round {number}", "body": words(number, 40), "kind": "note"}
            await timed("forum.post", agent.call(agent.forum, "post", post))


async def worst_search(agent: Agent) -> None:
    while True:
        await agent.forum.call_tool("search", {"query": HOSTILE, "limit": 200})


async def post_flood(agent: Agent) -> None:
    body = words(7, 7_000)[:50_000]
    while True:
        await agent.forum.call_tool("post", {"title": "flood", "body": body, "kind": "note"})


async def job_slot_flood(agent: Agent) -> None:
    while True:
        await agent.sandbox.call_tool("start_job", {"name": "hog", "command": "sleep 600"})


async def log_flood(agent: Agent) -> None:
    while True:
        started = await agent.sandbox.call_tool("start_job", {"name": "loud", "command": "yes loud-log-line"})
        if started.is_error:  # the agent's queue is full: wait for one to end at its log limit
            await anyio.sleep(0.2)


async def cpu_flood(agent: Agent) -> None:
    busy = "for n in 1 2 3 4; do yes > /dev/null & done; wait"
    while True:
        started = await agent.sandbox.call_tool("start_job", {"name": "spin", "command": busy})
        if started.is_error:  # its running and queued jobs are at their caps: they spin on
            await anyio.sleep(1)


ATTACKS: dict[str, tuple[Attack, int]] = {
    "worst search": (worst_search, 4),
    "post flood": (post_flood, 4),
    "job-slot flood": (job_slot_flood, 1),
    "log flood": (log_flood, 1),
    "CPU flood": (cpu_flood, 1),
}
"""Each attack and how many of its calls run at once."""


def attack_process(port: int, token: str, attack: str) -> None:
    """The attacker's process: `attack`, with its calls in parallel, until terminated."""

    async def main() -> None:
        run, parallel = ATTACKS[attack]
        async with connected(port, token, ATTACKER) as attacker, anyio.create_task_group() as group:
            for _ in range(parallel):
                group.start_soon(run, attacker)

    asyncio.run(main())


async def stop_jobs(agent: Agent) -> None:
    """Cancel every job the attacker left queued or running, so the next phase starts clean."""
    for state in ("queued", "running"):
        listed = await agent.call(agent.sandbox, "list_jobs", {"state": state, "limit": 500})
        for job in listed["jobs"]:
            await agent.sandbox.call_tool("cancel_job", {"job_id": job["id"]})


async def phase(http: HttpServer, snapshots: dict[str, str], rounds: int, attack: str | None) -> dict[str, Any]:
    """The eight researchers' latencies, alone or beside `attack`."""
    latencies: dict[str, list[float]] = {}
    refusals: dict[str, int] = {}
    attacker = None
    if attack is not None:
        spawn = multiprocessing.get_context("spawn")
        attacker = spawn.Process(target=attack_process, args=(http.port, http.token(ATTACKER), attack), daemon=True)
        attacker.start()
        await anyio.sleep(5)  # the process starts, then its attack takes hold (slots filled, queue flooded)
    started = time.perf_counter()
    try:
        async with anyio.create_task_group() as team:
            for name in RESEARCHERS:
                team.start_soon(_research, http, name, rounds, snapshots[name], latencies, refusals)
    finally:
        if attacker is not None:
            attacker.terminate()
            attacker.join()
    elapsed = time.perf_counter() - started
    async with connected(http.port, http.token(ATTACKER), ATTACKER) as cleaner:
        await stop_jobs(cleaner)
    operations = {operation: _stats(timings) for operation, timings in latencies.items()}
    for operation, count in refusals.items():
        operations[operation]["refused"] = count
    return {"attack": attack or "none", "elapsed_s": elapsed, "operations": operations}


async def _research(http: HttpServer, name: str, rounds: int, snapshot: str, *timings: dict[str, Any]) -> None:
    async with connected(http.port, http.token(name), name) as agent:
        await researcher(agent, rounds, snapshot, *timings)


def _stats(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "refused": 0,
        "p50_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
    }


async def run(rounds: int, posts: int, attacks: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="aar-fairness-") as scratch:
        data_dir = Path(scratch) / "data"
        await seed_forum(data_dir, posts)
        http = HttpServer(data_dir).start()
        try:
            snapshots = {}
            for name in RESEARCHERS:
                async with connected(http.port, http.token(name), name) as agent:
                    files = {"method.py": f"# {name}\n" + "x = 1\n" * 200}
                    saved = await agent.call(agent.storage, "save", {"files": files, "message": "bench"})
                    snapshots[name] = saved["id"]
            results = []
            for attack in (None, *[step for name in attacks for step in (name, None)]):
                result = await phase(http, snapshots, rounds, attack)
                print(f"{result['attack']:15} {result['elapsed_s']:6.1f} s", file=sys.stderr)
                results.append(result)
            return results
        finally:
            http.stop()


def beside_unloaded(results: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Each attacked phase with the unloaded phases before and after it (phases alternate: none, attack, none...)."""
    return zip(results[0::2], results[1::2], results[2::2], strict=False)


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per attack and operation, p50 and p90, and the p50 against the unloaded runs beside it."""
    lines = [
        "| beside | operation | p50 ms | p90 ms | unloaded p50 ms | p50 / unloaded | refused |",
        "|---|---|---|---|---|---|---|",
    ]
    for before, attacked, after in beside_unloaded(results):
        for operation, stats in attacked["operations"].items():
            unloaded = (before["operations"][operation]["p50_ms"] + after["operations"][operation]["p50_ms"]) / 2
            lines.append(
                f"| {attacked['attack']} | {operation} | {stats['p50_ms']:.1f} | {stats['p90_ms']:.1f}"
                f" | {unloaded:.1f} | {stats['p50_ms'] / unloaded:.2f} | {stats['refused']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/fairness.json"))
    parser.add_argument("--rounds", type=int, default=6, help="Rounds per researcher per phase.")
    parser.add_argument("--posts", type=int, default=10_000, help="Posts in the forum before measuring.")
    parser.add_argument("--only", choices=list(ATTACKS), action="append", help="Run only these attacks.")
    args = parser.parse_args()
    results = asyncio.run(run(args.rounds, args.posts, args.only or list(ATTACKS)))
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rounds": args.rounds, "seed_posts": args.posts, "phases": results}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
