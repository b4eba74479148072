"""Quick feedback is no label oracle: coarse answers, near-duplicate queries answered from history,
and budgets taken atomically per agent and per team, also under concurrent and colluding callers."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from mcp import Client

from servers.pgr.quick import ACCURACY_STEP, min_distance
from servers.pgr.testbed import QUICK_SEED
from servers.w2s.tasks import load_task
from servers.w2s.testbed import Testbed
from tests.pgr.support import error_text, pgr_client
from tests.support import W2S_CACHE, HttpServer, pgr_ready

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(1200)]  # the first test may prepare a cold cache

TASK = "wordnet-living"


def _validation_labels() -> np.ndarray:
    task = load_task(TASK)
    labels: np.ndarray = task.labels[Testbed(W2S_CACHE).seed_data(task, QUICK_SEED).splits.validation]
    return labels


async def _ask(client: Client, predictions: str) -> dict[str, Any] | str:
    result = await client.call_tool("evaluate_predictions", {"task": TASK, "predictions": predictions})
    return error_text(result) if result.is_error else result.structured_content


def _flip(text: str, rows: list[int]) -> str:
    chars = list(text)
    for row in rows:
        chars[row] = "1" if chars[row] == "0" else "0"
    return "".join(chars)


async def test_one_flip_at_a_time_learns_no_label_and_costs_no_budget(data_dir: Path) -> None:
    """The old attack: 20 calls, one flipped prediction each, gave 18 exact labels."""
    async with pgr_client(data_dir, pgr_evaluations_per_hour=3) as client:
        n = len(_validation_labels())
        base = "0" * n
        first = await _ask(client, base)
        answers = [await _ask(client, _flip(base, [row])) for row in range(20)]
    assert isinstance(first, dict) and not first["repeated"]
    assert all(isinstance(a, dict) and a["repeated"] for a in answers), answers
    assert {(a["accuracy"], a["pgr"]) for a in answers} == {(first["accuracy"], first["pgr"])}  # type: ignore[index]
    assert answers[-1]["evaluations_left"] == 2  # type: ignore[index]
    assert math.isclose(first["accuracy"] / ACCURACY_STEP, round(first["accuracy"] / ACCURACY_STEP))


async def test_concurrent_calls_cannot_outrun_the_budget(data_dir: Path) -> None:
    """The old race: 600 concurrent calls against a budget of 20 got 117 answers."""
    n = len(_validation_labels())
    rng = np.random.default_rng(1)
    queries = ["".join(map(str, rng.integers(0, 2, n))) for _ in range(40)]  # far apart: each one is new
    async with pgr_client(data_dir, pgr_evaluations_per_hour=5) as client:
        answers: list[dict[str, Any] | str] = []

        async def ask(predictions: str) -> None:
            answers.append(await _ask(client, predictions))

        async with anyio.create_task_group() as group:
            for query in queries:
                group.start_soon(ask, query)
    scored = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if isinstance(a, str)]
    assert len(scored) == 5 and len(refused) == 35
    assert (
        "your quick-evaluation budget is spent (5 per hour, setting AAR_PGR_EVALUATIONS_PER_HOUR)" in refused[0]
        and "frees in about" in refused[0]
    )


async def test_colluding_agents_share_one_team_budget_and_one_history(data_dir: Path) -> None:
    n = len(_validation_labels())
    rng = np.random.default_rng(2)
    server = HttpServer(data_dir, AAR_PGR_EVALUATIONS_PER_HOUR="4", AAR_PGR_TEAM_EVALUATIONS_PER_HOUR="6").start()
    try:
        async with (
            server.client("pgr", "alice") as alice,
            server.client("pgr", "bob") as bob,
            server.client("pgr", "carol") as carol,
        ):
            await pgr_ready(alice)
            base = "".join(map(str, rng.integers(0, 2, n)))
            await _ask(alice, base)
            echoed = await _ask(bob, _flip(base, [0]))  # bob probes alice's query: he gets her answer, no new bit
            assert isinstance(echoed, dict) and echoed["repeated"]
            answers = []
            for client in (alice, bob, carol) * 3:
                answers.append(await _ask(client, "".join(map(str, rng.integers(0, 2, n)))))
    finally:
        server.stop()
    assert sum(isinstance(a, dict) for a in answers) == 5  # 6 for the team, one already used by alice
    assert any(isinstance(a, str) and "the team's quick-evaluation budget is spent" in a for a in answers)


async def test_the_best_group_probing_attack_recovers_no_label_for_certain(data_dir: Path) -> None:
    """Differential probing with groups just large enough to count as new queries (docs/integrity.md):
    each answer tells the number of positives in a group only to within a grid step, so no label is
    certain, and the guesses are little better than the class balance."""
    labels = _validation_labels()
    n, group = len(labels), min_distance(len(labels))
    budget = 20
    async with pgr_client(data_dir, pgr_evaluations_per_hour=budget) as client:
        base = "0" * n
        start = await _ask(client, base)
        assert isinstance(start, dict)
        guesses: dict[int, int] = {}
        certain = 0
        for index in range(budget - 1):
            rows = list(range(index * group, (index + 1) * group))
            answer = await _ask(client, _flip(base, rows))
            assert isinstance(answer, dict) and not answer["repeated"]
            # acc moves by (positives - negatives) / n in the group, seen only to within one grid step
            moved = (answer["accuracy"] - start["accuracy"]) * n
            low, high = (moved - ACCURACY_STEP * n + group) / 2, (moved + ACCURACY_STEP * n + group) / 2
            certain += group * (high <= 0 or low >= group)
            for row in rows:
                guesses[row] = int(moved > 0)
        over = await _ask(client, "1" * n)
    assert isinstance(over, str) and "budget is spent" in over
    accuracy = np.mean([labels[row] == guess for row, guess in guesses.items()])
    assert certain == 0
    assert accuracy < 0.8, accuracy
    bits = (budget) * math.log2(1 / ACCURACY_STEP + 1)
    assert len(guesses) * (accuracy - max(labels.mean(), 1 - labels.mean())) <= bits


async def test_every_answer_and_refusal_is_audited(data_dir: Path) -> None:
    async with pgr_client(data_dir, pgr_evaluations_per_hour=1) as client:
        n = len(_validation_labels())
        await _ask(client, "1" * n)
        await _ask(client, "1" * (n - 1) + "0")
        await _ask(client, "0" * n)
    with sqlite3.connect(data_dir / "pgr.sqlite") as connection:
        kinds = [kind for (kind,) in connection.execute("SELECT kind FROM evaluations ORDER BY id")]
        assert kinds == ["quick", "repeated", "refused"]
        for statement in ("UPDATE evaluations SET accuracy = 1.0", "DELETE FROM evaluations"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)
