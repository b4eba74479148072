"""Everything the client knows about the PGR server, in one place, so that the agent loop stays generic.

Which call spends a submission (and the run's submission budgets that gate it), what a submission's
final states are, how to ask for a submission's score while waiting for it, and which events an
answer of the PGR server becomes in the agent's record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from client.record import Tally
from client.run_manifest import BudgetLimits

if TYPE_CHECKING:  # the scripted researcher reads FINAL_STATES without the MCP client
    from client.bridge import ToolBridge

SUBMIT = "pgr__submit"
"""The one call that spends a submission."""
SUBMISSION = "pgr__submission"
TASK_INFO = "pgr__task_info"
EVALUATE = "pgr__evaluate_predictions"
FINAL_STATES = ("done", "failed", "flagged", "quarantined")
"""A submission in one of these states will not change again (its score, if any, is final)."""
POLL_S = 5.0
"""How often a finished agent asks for the scores it waits on: another process scores them, with no event to wait on."""


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """An event for the agent's record that a PGR answer gave (`kind` is the record's event type)."""

    kind: str
    fields: dict[str, Any]


def spends_submission(tool: str) -> bool:
    """Whether a call of `tool` spends one of the run's PGR submissions (gated by its budgets)."""
    return tool == SUBMIT


def submission_refusal(
    agent: tuple[BudgetLimits, Tally], team: tuple[BudgetLimits, Tally], *, in_flight: int
) -> str | None:
    """Why a submission may not be made now (the agent's or the team's budget is spent), or None.

    `in_flight` counts the team's submissions sent but not yet answered, so that agents submitting
    at once cannot overshoot the team's budget."""
    return _spent(*agent, "your") or _spent(*team, "the team's", in_flight=in_flight)


def _spent(budget: BudgetLimits, used: Tally, who: str, *, in_flight: int = 0) -> str | None:
    submissions = used.submissions + in_flight
    if budget.pgr_submissions is not None and submissions >= budget.pgr_submissions:
        return f"{who} PGR submission budget is spent ({submissions} of {budget.pgr_submissions})"
    return None


def poll(submission_id: str) -> tuple[str, dict[str, Any]]:
    """The call (tool, arguments) that reads a submission's state and score."""
    return SUBMISSION, {"submission_id": submission_id}


def observe(tool: str, data: Mapping[str, Any], last_states: dict[str, str | None]) -> Observation | None:
    """What a successful PGR answer `data` adds to the record, if anything.

    `last_states` holds the last state seen of each submission and is updated here: a poll that
    finds no change adds nothing.
    """
    if tool == SUBMIT and data.get("id"):
        return Observation("submission", {"id": data["id"]})
    if tool == SUBMISSION and data.get("id"):
        state = data.get("state")
        if last_states.get(data["id"]) == state:
            return None
        last_states[data["id"]] = state
        fields = {
            "kind": "submission",
            "id": data["id"],
            "state": state,
            "pgr": data.get("pgr_mean"),
            "results": data.get("results") or [],
            "final": state in FINAL_STATES,
        }
        return Observation("score", fields)
    if tool == EVALUATE:
        return Observation("score", {"kind": "validation", "task": data.get("task"), "pgr": data.get("pgr")})
    return None


async def wait_until_ready(bridge: ToolBridge, announce: Callable[[str], None]) -> None:
    """Return once the PGR server has prepared its tasks (or cannot say), announcing its progress as it goes."""
    announced = -1
    while True:
        outcome = await bridge.call(TASK_INFO, {})
        info = outcome.structured or {}
        if outcome.is_error or info.get("ready", True):
            if outcome.is_error:
                logger.warning("the pgr server is not ready: %s", outcome.text)
            return
        preparing = info.get("preparing") or {}
        if preparing.get("done") != announced:
            announced = preparing.get("done", 0)
            left = preparing.get("seconds_left")
            eta = "" if left is None else f", about {left:.0f} s left"
            announce(
                f"the pgr server is preparing its tasks: {announced} of {preparing.get('total')} task seeds"
                f"{eta} (a first run only; cached afterwards)"
            )
        await anyio.sleep(2)
