"""The secret transfer tasks are drawn so that PGR has a gap to measure on them.

A draw whose teacher is about as good as the strong model trained on ground truth makes PGR divide
noise by almost nothing: one such task scored -3 and swung the official mean of every submission.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
from pathlib import Path

import pytest

from servers.pgr.secret_task import ATTEMPTS, MIN_GAP, SECRET_FAMILIES, derive_secret_tasks
from servers.pgr.testbed import TaskBench
from tests.pgr.support import pgr_client
from tests.support import SECRET_DRAW, SECRET_TASKS, W2S_CACHE, pgr_ready


def _data(pack: Path) -> str:
    return hashlib.sha256((pack / "data.jsonl.gz").read_bytes()).hexdigest()


def test_a_draw_without_a_gap_to_measure_is_drawn_again(tmp_path: Path) -> None:
    measured: list[tuple[str, str, float]] = []
    answers = iter([0.0, 0.01, MIN_GAP, MIN_GAP + 0.1])  # category: twice too narrow, then kept; negation: kept

    def gap(pack: Path) -> float:
        value = next(answers)
        measured.append((pack.name, _data(pack), value))
        return value

    derive_secret_tasks(tmp_path / "checked", rng=random.Random(7), gap=gap)
    derive_secret_tasks(tmp_path / "unchecked", rng=random.Random(7))
    assert [name.split("-")[:-1] for name, _, _ in measured] == [[".wordnet", "category"]] * 3 + [[".negation"]]
    kept = _data(tmp_path / "checked" / "wordnet-category")
    assert kept == measured[2][1] != measured[0][1], "the third draw, the first wide enough, is kept"
    assert _data(tmp_path / "unchecked" / "wordnet-category") == measured[0][1], "the first draw is the unchecked one"
    assert _data(tmp_path / "checked" / "negation") == _data(tmp_path / "unchecked" / "negation")
    assert sorted(path.name for path in (tmp_path / "checked").iterdir()) == sorted(SECRET_FAMILIES), "no draft left"


def test_when_no_draw_is_wide_enough_the_widest_is_kept_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    measured: list[tuple[str, float]] = []
    values = iter([0.01, 0.04, 0.02] + [0.0] * (ATTEMPTS - 3))

    def gap(pack: Path) -> float:
        value = next(values) if pack.name.startswith(".negation") else 1.0
        if pack.name.startswith(".negation"):
            measured.append((_data(pack), value))
        return value

    with caplog.at_level(logging.WARNING, logger="servers.pgr.secret_task"):
        derive_secret_tasks(tmp_path, rng=random.Random(7), gap=gap)
    assert len(measured) == ATTEMPTS
    assert _data(tmp_path / "negation") == measured[1][0], "the widest draw (0.04) is kept"
    assert "no secret negation task reached a gap of 0.06; keeping the widest (0.040)" in caplog.text
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(SECRET_FAMILIES)


@pytest.mark.slow
def test_a_real_draw_whose_teacher_matches_the_ceiling_is_replaced(tmp_path: Path) -> None:
    """Random(1) draws a negation task whose teacher beats the strong model trained on ground truth
    (test accuracy 0.89 against 0.87): the server's own check draws again until the gap is measurable."""
    shutil.copytree(SECRET_TASKS / "wordnet-category", tmp_path / "wordnet-category")  # only negation is drawn
    bench = TaskBench(None, None, W2S_CACHE, 1, b"test")
    leads: list[float] = []

    def gap(pack: Path) -> float:
        leads.append(bench.ceiling_lead(pack))
        return leads[-1]

    derive_secret_tasks(tmp_path, rng=random.Random(1), gap=gap)
    assert leads[0] < MIN_GAP <= leads[-1], leads
    assert bench.ceiling_lead(tmp_path / "negation") == pytest.approx(leads[-1])


@pytest.mark.anyio
async def test_a_server_draws_its_own_secret_tasks_while_it_prepares_then_scores_them(
    data_dir: Path, one_public_task: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests' own draw (its data is in the shared cache), made by the server as on a first start.
    monkeypatch.setattr("servers.pgr.secret_task.secrets.SystemRandom", lambda: random.Random(SECRET_DRAW))
    async with pgr_client(data_dir, pgr_tasks_dir=one_public_task, pgr_secret_tasks_dir=None) as client:
        info = await pgr_ready(client)
    assert info["secret_tasks"] == 2
    drawn = data_dir / "pgr" / "secret-tasks"
    assert sorted(path.name for path in drawn.iterdir()) == sorted(SECRET_FAMILIES)
    for family in SECRET_FAMILIES:
        assert _data(drawn / family) == _data(SECRET_TASKS / family)


@pytest.mark.anyio
async def test_an_operators_secret_task_without_a_gap_to_measure_is_named_in_a_warning(
    data_dir: Path, tmp_path: Path, one_public_task: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The degenerate draw (Random(1)) of the redraw test, brought by an operator
    (AAR_PGR_SECRET_TASKS_DIR): the server cannot draw again, but says which task's PGR is noise."""
    derive_secret_tasks(tmp_path / "operator", rng=random.Random(1))
    with caplog.at_level(logging.WARNING, logger="servers.pgr.service"):
        async with pgr_client(data_dir, pgr_tasks_dir=one_public_task, pgr_secret_tasks_dir=tmp_path / "operator"):
            pass
    narrow = [record.getMessage() for record in caplog.records if "mostly noise" in record.getMessage()]
    assert len(narrow) == 1 and narrow[0].startswith("task secret-1: its ceiling leads the teacher by -"), narrow
