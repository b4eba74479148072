"""The secret transfer tasks are drawn so that PGR has a gap to measure on them.

A draw whose teacher is about as good as the strong model trained on ground truth makes PGR divide
noise by almost nothing: one such task scored -3 and swung the official mean of every submission.
A draw whose teacher is near chance teaches too little for PGR to settle: a method's PGR on it
swung by 0.3-0.4 from seed to seed, and honest methods were flagged by the controls.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
from pathlib import Path

import pytest

from servers.pgr.secret_task import ATTEMPTS, MIN_GAP, MIN_TEACHER, SECRET_FAMILIES, Fitness, derive_secret_tasks
from servers.pgr.testbed import TaskBench
from tests.pgr.support import pgr_client
from tests.support import SECRET_DRAW, SECRET_TASKS, W2S_CACHE, pgr_ready


def _data(pack: Path) -> str:
    return hashlib.sha256((pack / "data.jsonl.gz").read_bytes()).hexdigest()


def test_a_draw_without_a_gap_to_measure_or_with_a_teacher_near_chance_is_drawn_again(tmp_path: Path) -> None:
    measured: list[tuple[str, str, Fitness]] = []
    answers = iter(
        [
            Fitness(teacher=0.8, lead=0.0),  # category: no gap,
            Fitness(teacher=MIN_TEACHER - 0.01, lead=None),  # then a teacher near chance,
            Fitness(teacher=MIN_TEACHER, lead=MIN_GAP),  # then kept;
            Fitness(teacher=0.7, lead=MIN_GAP + 0.1),  # negation: kept
        ]
    )

    def check(pack: Path) -> Fitness:
        measured.append((pack.name, _data(pack), next(answers)))
        return measured[-1][2]

    derive_secret_tasks(tmp_path / "checked", rng=random.Random(7), check=check)
    derive_secret_tasks(tmp_path / "unchecked", rng=random.Random(7))
    assert [name.split("-")[:-1] for name, _, _ in measured] == [[".wordnet", "category"]] * 3 + [[".negation"]]
    kept = _data(tmp_path / "checked" / "wordnet-category")
    assert kept == measured[2][1] != measured[0][1], "the third draw, the first fit, is kept"
    assert _data(tmp_path / "unchecked" / "wordnet-category") == measured[0][1], "the first draw is the unchecked one"
    assert _data(tmp_path / "checked" / "negation") == _data(tmp_path / "unchecked" / "negation")
    assert sorted(path.name for path in (tmp_path / "checked").iterdir()) == sorted(SECRET_FAMILIES), "no draft left"


def test_when_no_draw_is_fit_the_best_is_kept_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    measured: list[tuple[str, Fitness]] = []
    values = iter(
        [Fitness(teacher=0.9, lead=0.01), Fitness(teacher=0.7, lead=0.04), Fitness(teacher=0.6, lead=None)]
        + [Fitness(teacher=0.55, lead=None)] * (ATTEMPTS - 3)
    )

    def check(pack: Path) -> Fitness:
        if not pack.name.startswith(".negation"):
            return Fitness(teacher=1.0, lead=1.0)
        measured.append((_data(pack), next(values)))
        return measured[-1][1]

    with caplog.at_level(logging.WARNING, logger="servers.pgr.secret_task"):
        derive_secret_tasks(tmp_path, rng=random.Random(7), check=check)
    assert len(measured) == ATTEMPTS
    assert _data(tmp_path / "negation") == measured[1][0], "the widest draw whose teacher passes (0.04) is kept"
    assert "no secret negation task had a teacher of 0.65 test accuracy and a ceiling 0.06 ahead" in caplog.text
    assert "keeping the best draw (teacher accuracy 0.700, ceiling lead 0.040)" in caplog.text
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(SECRET_FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("draw", "first"),
    [
        (0, "its teacher is near chance: test accuracy 0.55-0.57, against 0.64-0.77 for the public tasks' teachers"),
        (1, "its teacher beats the strong model trained on ground truth: test accuracy 0.89 against 0.87"),
    ],
)
def test_a_real_draw_that_cannot_measure_pgr_is_replaced(tmp_path: Path, draw: int, first: str) -> None:
    """Real negation draws that the server's own check (`TaskBench.draw_fitness`) draws again, on
    three seeds, until one is fit; a teacher under the floor is judged before anything is embedded."""
    shutil.copytree(SECRET_TASKS / "wordnet-category", tmp_path / "wordnet-category")  # only negation is drawn
    bench = TaskBench(None, None, W2S_CACHE, 3, b"test")
    checked: list[Fitness] = []

    def check(pack: Path) -> Fitness:
        checked.append(bench.draw_fitness(pack))
        return checked[-1]

    derive_secret_tasks(tmp_path, rng=random.Random(draw), check=check)
    assert not checked[0].fit and checked[-1].fit, (first, checked)
    if draw == 0:
        assert checked[0].teacher < MIN_TEACHER and checked[0].lead is None, checked
    else:
        assert checked[0].teacher >= MIN_TEACHER and checked[0].lead is not None and checked[0].lead < 0, checked
    assert bench.draw_fitness(tmp_path / "negation") == checked[-1]


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
