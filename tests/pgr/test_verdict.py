"""The transfer check judges a public gain against the secret task's gain, where a loss counts as none.

The figures are a real first run's (2026-12-01): the reference (aux_confidence) and an honest
submission (the reweight direction's method) on the four public tasks and the two secret ones.
"""

from __future__ import annotations

from servers.pgr.models import TaskOutcome
from servers.pgr.verdict import Margins, judge, transfer_excess

FAMILIES = {
    "negation": "negation",
    "wordnet-living": "wordnet-category",
    "wordnet-food-substance": "wordnet-category",
    "secret-1": "negation",
    "secret-2": "wordnet-category",
}
SECRET = {"secret-1", "secret-2"}
REFERENCE = {
    "negation": 0.04,
    "wordnet-living": 0.70,
    "wordnet-food-substance": 0.86,
    "secret-1": -0.14,
    "secret-2": 0.46,
}
MARGINS = Margins(shuffled=0.25, decoy=1.0, transfer=0.5)


def _rows(pgr: dict[str, float]) -> list[TaskOutcome]:
    return [TaskOutcome(task, value, 0.05, 5, None, None) for task, value in pgr.items()]


def test_an_honest_method_that_loses_on_a_harder_secret_draw_is_not_flagged() -> None:
    honest = {
        "negation": 0.10,
        "wordnet-living": 0.80,
        "wordnet-food-substance": 0.80,
        "secret-1": -1.05,
        "secret-2": 0.50,
    }
    excess = transfer_excess(_rows(honest), FAMILIES, SECRET, REFERENCE)
    # negation: 0.06 over the reference, against a loss on secret-1 (counted as no gain; measured
    # from the loss it was 0.97, and the method was flagged); living: 0.10 against secret-2's 0.04
    assert excess is not None and round(excess, 2) == 0.06
    assert judge(_rows(honest), FAMILIES, SECRET, MARGINS, REFERENCE).flags == []


def test_a_public_gain_over_the_margin_is_flagged_whatever_the_secret_task_shows_below_it() -> None:
    for secret_negation in (-1.0, -0.14, 0.2):  # a loss, the reference's own score, a small gain
        rule = {"negation": 0.95, "wordnet-living": 0.70, "secret-1": secret_negation, "secret-2": 0.46}
        flags = judge(_rows(rule), FAMILIES, SECRET, MARGINS, REFERENCE).flags
        assert len(flags) == 1 and flags[0].startswith("does-not-transfer"), (secret_negation, flags)


def test_a_public_gain_the_secret_task_repeats_is_not_flagged() -> None:
    transfers = {"negation": 0.95, "secret-1": 0.6, "wordnet-living": 0.7, "secret-2": 0.46}
    excess = transfer_excess(_rows(transfers), FAMILIES, SECRET, REFERENCE)
    assert excess is not None and round(excess, 2) == 0.17  # 0.91 on negation against 0.74 on secret-1
    assert judge(_rows(transfers), FAMILIES, SECRET, MARGINS, REFERENCE).flags == []
