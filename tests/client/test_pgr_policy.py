"""What the client knows about PGR lives in client/pgr_policy.py; the agent loop is generic."""

from __future__ import annotations

from pathlib import Path

from client import pgr_policy
from client.record import Tally
from client.run_manifest import BudgetLimits
from client.scripted import researcher

CLIENT = Path(__file__).resolve().parents[2] / "client"


def test_the_agent_loop_names_no_pgr_tool_or_state() -> None:
    source = (CLIENT / "agent.py").read_text()
    assert "pgr__" not in source and '"flagged"' not in source and "pgr_mean" not in source


def test_the_scripted_researcher_reads_the_final_states_from_the_policy() -> None:
    assert researcher.FINAL_STATES is pgr_policy.FINAL_STATES  # type: ignore[attr-defined]  # the re-export is what it checks


def test_a_submission_is_recorded_once_per_state_and_final_only_when_it_cannot_change() -> None:
    states: dict[str, str | None] = {}
    submitted = pgr_policy.observe(pgr_policy.SUBMIT, {"id": "sub_1", "state": "queued"}, states)
    assert submitted == pgr_policy.Observation("submission", {"id": "sub_1"})
    running = pgr_policy.observe(pgr_policy.SUBMISSION, {"id": "sub_1", "state": "running"}, states)
    assert running is not None and running.fields["final"] is False
    assert pgr_policy.observe(pgr_policy.SUBMISSION, {"id": "sub_1", "state": "running"}, states) is None
    results = [{"task": "wordnet-living", "pgr_mean": 0.4}]
    answer = {"id": "sub_1", "state": "flagged", "pgr_mean": 0.4, "results": results}
    done = pgr_policy.observe(pgr_policy.SUBMISSION, answer, states)
    assert done is not None and done.fields == {
        "kind": "submission", "id": "sub_1", "state": "flagged", "pgr": 0.4, "results": results, "final": True,
    }  # fmt: skip
    assert pgr_policy.observe("forum__post", {"id": 3}, states) is None


def test_submissions_in_flight_count_against_the_team_budget_only() -> None:
    agent = (BudgetLimits(pgr_submissions=3), Tally(submissions=1))
    team = (BudgetLimits(pgr_submissions=4), Tally(submissions=2))
    assert pgr_policy.submission_refusal(agent, team, in_flight=1) is None
    assert pgr_policy.submission_refusal(agent, team, in_flight=2) == (
        "the team's PGR submission budget is spent (4 of 4)"
    )
    spent = (BudgetLimits(pgr_submissions=1), Tally(submissions=1))
    assert pgr_policy.submission_refusal(spent, team, in_flight=0) == "your PGR submission budget is spent (1 of 1)"
