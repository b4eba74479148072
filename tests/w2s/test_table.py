from __future__ import annotations

import pytest

from servers.w2s.evaluate import SeedResult
from servers.w2s.table import format_table, mean_se, summarise


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
