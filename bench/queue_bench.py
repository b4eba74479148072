"""The PGR queue beside a hostile agent: how much longer do eight researchers wait for their scores?

`aar serve all --http` on loopback scores one task pack with one seed, so that a submission is a
handful of isolated runs (seconds on two cores) instead of the default testbed's 75: what is
measured is the queue's order, not the runs. Each phase has a fresh data directory (one feature
cache for all of them) and a warm-up submission. Eight researchers then submit a method each at
the same moment and wait for its verdict; what each waits, from `submit` to a finished state, is
the measure. The team's hourly budget is lifted (AAR_PGR_TEAM_SUBMISSIONS_PER_HOUR) so that the
phases fit in one hour; each agent's own budget stays the default.

The researchers submit alone, then beside a ninth agent that has filled the queue first with as
many submissions as its budget allows, and alone again, for each attack:

- flood: ordinary methods (the issue's queue flood: one agent queueing hours of scoring);
- slow flood: methods whose every run sleeps until the submission's time limit
  (AAR_PGR_SUBMISSION_TIMEOUT_S, set here to about ten times an ordinary submission, as the
  default of 30 minutes is to a default submission of a few minutes);
- busy flood: the same, but every run keeps a core busy until the limit.

Each attack is compared with the mean of the unloaded phases around it.

    .venv/bin/python bench/queue_bench.py [--json bench/results/queue.json] [--only flood]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fairness_bench import beside_unloaded
from tests.support import HttpServer, call, pgr_ready

ROOT = Path(__file__).resolve().parents[1]

RESEARCHERS = [f"researcher-{n}" for n in range(8)]
ATTACKER = "hostile"
TASK = "wordnet-living"
TIMEOUT_S = 150
"""The submission time limit in this bench: about ten times an ordinary submission here."""
FINISHED = ("done", "flagged", "failed")
METHOD = 'from servers.w2s.methods.plain_ce import plain_ce as method\nAUTHOR = "{name}"\n'
"""An ordinary method; the author's name makes each agent's code its own (same code by two agents is refused)."""
SLOW_METHOD = (
    "import time\nfrom servers.w2s.methods.plain_ce import plain_ce\nAUTHOR = '{name}'\n\n\n"
    "def method(inp):\n    time.sleep(10**6)\n    return plain_ce(inp)\n"
)
BUSY_METHOD = "AUTHOR = '{name}'\n\n\ndef method(inp):\n    while True:\n        pass\n"
ATTACKS = {"flood": METHOD, "slow flood": SLOW_METHOD, "busy flood": BUSY_METHOD}


async def save(http: HttpServer, agent: str, code: str) -> str:
    async with http.client("storage", agent) as storage:
        return str((await call(storage, "save", {"files": {"method.py": code}, "message": "bench"}))["id"])


async def wait_for_state(http: HttpServer, agent: str, submission_id: str, states: tuple[str, ...]) -> str:
    async with http.client("pgr", agent) as pgr:
        while (state := (await call(pgr, "submission", {"submission_id": submission_id}))["state"]) not in states:
            await asyncio.sleep(0.5)
        return str(state)


async def submit_and_wait(http: HttpServer, agent: str, snapshot: str) -> tuple[float, str]:
    """Seconds from `submit` to a finished state, and that state."""
    started = time.perf_counter()
    async with http.client("pgr", agent) as pgr:
        submitted = await call(pgr, "submit", {"snapshot": snapshot, "entry_point": "method.py:method"})
    state = await wait_for_state(http, agent, submitted["id"], FINISHED)
    return time.perf_counter() - started, state


async def flood(http: HttpServer, code: str) -> int:
    """The attacker's submissions, until its budget refuses one; returns how many were queued."""
    queued = []
    async with http.client("pgr", ATTACKER) as pgr:
        for number in range(100):
            snapshot = await save(http, ATTACKER, code.format(name=f"{ATTACKER} {number}"))
            result = await pgr.call_tool("submit", {"snapshot": snapshot, "entry_point": "method.py:method"})
            if result.is_error:
                break
            queued.append(result.structured_content["id"])
    await wait_for_state(http, ATTACKER, queued[0], ("running", *FINISHED))  # the flood holds the scorer
    return len(queued)


async def phase(scratch: Path, cache: Path, tasks: Path, attack: str | None) -> dict[str, Any]:
    """The researchers' waits, alone or beside `attack`, on a server of its own."""
    data_dir = Path(tempfile.mkdtemp(prefix="phase-", dir=scratch))
    http = HttpServer(
        data_dir,
        AAR_W2S_CACHE_DIR=str(cache),
        AAR_PGR_TASKS_DIR=str(tasks),
        AAR_PGR_SECRET_TASKS_DIR=str(scratch / "no-secret-tasks"),
        AAR_PGR_SEEDS="1",
        AAR_PGR_SUBMISSION_TIMEOUT_S=str(TIMEOUT_S),
        AAR_PGR_TEAM_SUBMISSIONS_PER_HOUR="1000",
    ).start()
    try:
        async with http.client("pgr", "warm-up") as pgr:
            await pgr_ready(pgr)
        warm_up = await submit_and_wait(http, "warm-up", await save(http, "warm-up", METHOD.format(name="warm-up")))
        snapshots = {name: await save(http, name, METHOD.format(name=name)) for name in RESEARCHERS}
        queued = await flood(http, ATTACKS[attack]) if attack else 0
        waits = await asyncio.gather(*(submit_and_wait(http, name, snapshots[name]) for name in RESEARCHERS))
    finally:
        http.stop()
    seconds = sorted(wait for wait, _ in waits)
    return {
        "attack": attack or "none",
        "attacker_queued": queued,
        "warm_up_s": warm_up[0],
        "waits_s": seconds,
        "states": sorted(state for _, state in waits),
        "p50_s": statistics.median(seconds),
        "max_s": seconds[-1],
    }


async def run(attacks: list[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="aar-queue-") as name:
        scratch = Path(name)
        (scratch / "no-secret-tasks").mkdir()
        tasks = scratch / "tasks"
        shutil.copytree(ROOT / "servers" / "pgr" / "tasks" / TASK, tasks / TASK)
        results = []
        for attack in (None, *[step for name in attacks for step in (name, None)]):
            result = await phase(scratch, scratch / "cache", tasks, attack)
            print(
                f"{result['attack']:11} researchers' wait p50 {result['p50_s']:6.1f} s, max {result['max_s']:6.1f} s"
                f" (attacker queued {result['attacker_queued']}; {', '.join(result['states'])})",
                file=sys.stderr,
            )
            results.append(result)
        return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per attack, the researchers' p50 and longest wait against the unloaded phases beside it."""
    lines = [
        "| beside | wait p50 s | longest s | unloaded p50 s | p50 / unloaded | longest / unloaded longest |",
        "|---|---|---|---|---|---|",
    ]
    for before, attacked, after in beside_unloaded(results):
        p50 = (before["p50_s"] + after["p50_s"]) / 2
        longest = (before["max_s"] + after["max_s"]) / 2
        lines.append(
            f"| {attacked['attack']} ({attacked['attacker_queued']} queued) | {attacked['p50_s']:.1f}"
            f" | {attacked['max_s']:.1f} | {p50:.1f} | {attacked['p50_s'] / p50:.2f}"
            f" | {attacked['max_s'] / longest:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench/results/queue.json"))
    parser.add_argument("--only", choices=list(ATTACKS), action="append", help="Run only these attacks.")
    args = parser.parse_args()
    results = asyncio.run(run(args.only or list(ATTACKS)))
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"task": TASK, "timeout_s": TIMEOUT_S, "phases": results}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
