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

from servers.pgr.secret_task import (
    ATTEMPTS,
    MIN_GAP,
    MIN_TEACHER,
    NEGATION_ROWS,
    NEGATORS,
    SECRET_FAMILIES,
    WORDNET,
    Fitness,
    derive_secret_tasks,
    evaluative_pairs,
)  # fmt: skip
from servers.pgr.testbed import TaskBench
from servers.w2s.tasks import list_tasks, load_task
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
    ("family", "first"),
    [
        ("wordnet-category", "its ceiling leads its teacher by only 0.027 of test accuracy on some seed"),
        ("negation", "its teacher is near the floor: test accuracy 0.61 on some seed"),
    ],
)
def test_a_real_draw_that_cannot_measure_pgr_is_replaced(tmp_path: Path, family: str, first: str) -> None:
    """Real first draws (Random(0)) that the server's own check (`TaskBench.draw_fitness`) draws
    again, on three seeds, until one is fit; a teacher under the floor is judged before anything is
    embedded."""
    for other in SECRET_FAMILIES:
        if other != family:  # only `family` is drawn
            shutil.copytree(SECRET_TASKS / other, tmp_path / other)
    bench = TaskBench(None, None, W2S_CACHE, 3, b"test")
    checked: list[Fitness] = []

    def check(pack: Path) -> Fitness:
        checked.append(bench.draw_fitness(pack))
        return checked[-1]

    derive_secret_tasks(tmp_path, rng=random.Random(0), check=check)
    assert not checked[0].fit and checked[-1].fit, (first, checked)
    if family == "negation":
        assert checked[0].teacher < MIN_TEACHER and checked[0].lead is None, checked
    else:
        assert checked[0].teacher >= MIN_TEACHER and checked[0].lead is not None and checked[0].lead < MIN_GAP, checked
    assert bench.draw_fitness(tmp_path / family) == checked[-1]


def test_the_negation_draw_is_praise_against_criticism_flipped_by_a_negator(tmp_path: Path) -> None:
    """Like the public negation task, over a vocabulary no shipped pack uses: a praise adjective
    labels a sentence 1 unless negated, a criticism one 0 unless negated."""
    derive_secret_tasks(tmp_path, rng=random.Random(SECRET_DRAW))
    task = load_task(tmp_path / "negation")
    praise = {a for a, _ in evaluative_pairs(WORDNET)}
    shipped = {word for pack in list_tasks() for text in load_task(pack).texts for word in text.split()}
    negated = 0
    for text, label in zip(task.texts, task.labels, strict=True):
        words = text.split()
        flipped = words[-2] in NEGATORS
        negated += flipped
        assert words[0] == "the" and label == int((words[-1] in praise) != flipped), text
        assert words[-1] not in shipped, text
    assert len(task.texts) == len(set(task.texts)) == NEGATION_ROWS and 0.25 < negated / len(task.texts) < 0.35


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
    """The narrow first category draw (Random(0)) of the redraw test, brought by an operator
    (AAR_PGR_SECRET_TASKS_DIR): the server cannot draw again, but says which task's PGR is noise."""
    derive_secret_tasks(tmp_path / "operator", rng=random.Random(0))
    with caplog.at_level(logging.WARNING, logger="servers.pgr.service"):
        async with pgr_client(data_dir, pgr_tasks_dir=one_public_task, pgr_secret_tasks_dir=tmp_path / "operator"):
            pass
    narrow = [record.getMessage() for record in caplog.records if "mostly noise" in record.getMessage()]
    assert len(narrow) == 1 and narrow[0].startswith("task secret-2: its ceiling leads the teacher by 0.027 "), narrow
