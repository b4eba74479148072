"""The team's budget counts every agent's spending, kept as events arrive (not summed per check)."""

from __future__ import annotations

from client import budget as budgets
from client.record import AgentProgress, Tally
from client.run_manifest import BudgetLimits


def model_call(tokens: int, dollars: float, purpose: str = "turn") -> dict[str, object]:
    usage = {"input_tokens": tokens, "output_tokens": 1}
    return {"type": "model_call", "usage": usage, "dollars": dollars, "purpose": purpose}


def test_the_team_tally_follows_every_agents_events_after_a_resume() -> None:
    resumed = [AgentProgress.from_events(iter([model_call(100, 0.5)])) for _ in range(3)]
    tally = Tally.of(resumed)
    for progress in resumed:
        progress.team = tally
    assert (tally.turns, tally.tokens, tally.dollars) == (3, 303, 1.5)

    resumed[0].apply(model_call(10, 0.25))
    resumed[1].apply(model_call(10, 0.25, purpose="compaction"))
    resumed[2].apply({"type": "submission", "id": "s1"})
    assert tally == Tally.of(resumed)
    assert (tally.turns, tally.tokens, tally.submissions) == (4, 325, 1)


def test_a_team_budget_is_spent_by_the_sum_of_its_agents() -> None:
    agents = [AgentProgress() for _ in range(1000)]
    tally = Tally.of(agents)
    for progress in agents:
        progress.team = tally
    budget = BudgetLimits(turns=1000)
    for progress in agents[:-1]:
        progress.apply(model_call(1, 0.0))
    assert budgets.spent(budget, tally, "team") is None
    agents[-1].apply(model_call(1, 0.0))
    assert budgets.spent(budget, tally, "team") == "team budget: turns (1000 of 1000)"
