from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from servers.pgr.verdict import Margins
from servers.w2s.evaluate import SeedResult
from servers.w2s.table import (
    Stat,
    TableRow,
    format_summaries,
    format_table,
    mean_se,
    method_summaries,
    run_table,
    summarise,
)


def _result(seed: int, w2s: float, ceiling: float = 0.8) -> SeedResult:
    from servers.w2s.scoring import pgr

    return SeedResult(
        task="t", seed=seed, split="test", control="none", mode="frozen",
        acc_weak=0.7, acc_ceiling=ceiling, acc_w2s=w2s, pgr=pgr(0.7, ceiling, w2s),
    )  # fmt: skip


def test_mean_and_standard_error_over_seeds() -> None:
    stat = mean_se([1.0, 2.0, 3.0])
    assert stat.mean == pytest.approx(2.0) and stat.se == pytest.approx(1 / 3**0.5) and stat.n == 3


def test_the_table_averages_pgr_over_the_seeds_where_it_is_defined() -> None:
    row = summarise("m", [_result(0, 0.75), _result(1, 0.80), _result(2, 0.75, ceiling=0.71)])
    assert row.pgr is not None and row.pgr.mean == pytest.approx(0.75) and row.pgr.n == 2
    text = format_table([row])
    assert "+0.75±0.25" in text and "2/3" in text and text.splitlines()[0].split()[:3] == ["task", "method", "control"]


def test_a_row_whose_pgr_is_never_defined_says_so() -> None:
    row = summarise("m", [_result(0, 0.75, ceiling=0.71)])
    assert row.pgr is None and "undefined" in format_table([row])


def _row(task: str, method: str, control: str, pgr: float) -> TableRow:
    stat = Stat(0.7, 0.01, 5)
    return TableRow(
        task=task, method=method, control=control, split="test",  # type: ignore[arg-type]
        weak=stat, ceiling=stat, w2s=stat, pgr=Stat(pgr, 0.05, 5),
    )  # fmt: skip


MARGINS = Margins(shuffled=0.25, decoy=1.0, transfer=0.5)


def test_a_method_summary_averages_tasks_and_gives_the_controls_verdict() -> None:
    rows = [
        *(_row(t, "honest", "none", p) for t, p in (("a", 0.6), ("b", 0.8))),
        *(_row(t, "honest", "shuffled", -0.5) for t in "ab"),
        *(_row(t, "honest", "decoy", 0.5) for t in "ab"),
        *(_row(t, "blind", "none", 0.7) for t in "ab"),
        *(_row(t, "blind", "shuffled", 0.65) for t in "ab"),
        *(_row(t, "blind", "decoy", 0.6) for t in "ab"),
        _row("a", "unchecked", "none", 0.3),
    ]
    honest, blind, unchecked = method_summaries(rows, {"honest": "Someone 2023"}, MARGINS)
    assert honest.pgr is not None and honest.pgr.mean == pytest.approx(0.7)
    assert honest.pgr.se == pytest.approx((0.05**2 * 2) ** 0.5 / 2)
    assert honest.verdict == "passes" and honest.paper == "Someone 2023"
    assert blind.verdict == "ignores-teacher"
    assert unchecked.verdict.startswith("not checked")
    text = format_summaries([honest, blind, unchecked])
    assert "+0.70±0.04" in text and "Someone 2023" in text


def test_two_packs_of_one_name_stay_apart(tmp_path: Path, w2s_cache: Path) -> None:
    """A run's secret packs are named after their family (``negation``): beside the public pack of that
    name, each keeps its own rows and counts in the mean over tasks."""
    from servers.w2s.methods import BASELINES
    from servers.w2s.tasks import default_tasks_root

    copy = tmp_path / "secret" / "negation"
    shutil.copytree(default_tasks_root() / "negation", copy)
    rows = run_table({"plain_ce": BASELINES["plain_ce"]}, ["negation", str(copy)], range(1), cache_dir=w2s_cache)
    assert [row.task for row in rows] == ["negation", str(copy)]
    (summary,) = method_summaries(rows, {}, MARGINS)
    assert summary.tasks == 2
