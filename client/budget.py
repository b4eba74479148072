"""Budgets: what an agent and the team may still spend, and the run's wall clock.

Limits are checked before each turn, so a turn in flight finishes (a turn can overshoot a token
or dollar limit by its own size). The deadline is different: it cancels the turn in flight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import anyio

from client.manifest import Budget
from client.record import AgentProgress


def spent(budget: Budget, progresses: Sequence[AgentProgress], who: str) -> str | None:
    """Why `budget` is used up by `progresses` (summed), or None while some of every limit is left."""
    turns = sum(p.turns for p in progresses)
    tokens = sum(p.usage.total for p in progresses)
    dollars = sum(p.dollars for p in progresses)
    if budget.turns is not None and turns >= budget.turns:
        return f"{who} budget: turns ({turns} of {budget.turns})"
    if budget.tokens is not None and tokens >= budget.tokens:
        return f"{who} budget: tokens ({tokens:,} of {budget.tokens:,})"
    if budget.dollars is not None and dollars >= budget.dollars:
        return f"{who} budget: dollars (${dollars:.2f} of ${budget.dollars:.2f})"
    return None


def submissions_spent(
    budget: Budget, progresses: Sequence[AgentProgress], who: str, *, in_flight: int = 0
) -> str | None:
    used = sum(len(p.submissions) for p in progresses) + in_flight
    if budget.pgr_submissions is not None and used >= budget.pgr_submissions:
        return f"{who} PGR submission budget is spent ({used} of {budget.pgr_submissions})"
    return None


def describe_left(budget: Budget, progress: AgentProgress, clock: RunClock) -> str:
    """What is left, in words the agent reads (kickoff and nudges)."""
    parts = []
    if budget.turns is not None:
        parts.append(f"{max(0, budget.turns - progress.turns)} turns")
    if budget.tokens is not None:
        parts.append(f"{max(0, budget.tokens - progress.usage.total):,} tokens")
    if budget.dollars is not None:
        parts.append(f"${max(0.0, budget.dollars - progress.dollars):.2f}")
    if budget.pgr_submissions is not None:
        parts.append(f"{max(0, budget.pgr_submissions - len(progress.submissions))} PGR submissions")
    if clock.deadline_s is not None:
        parts.append(f"{clock.remaining() / 60:.1f} minutes of wall-clock time")
    return ", ".join(parts) or "no fixed limit"


class RunClock:
    """Wall-clock time of the run, summed over resumes, against its deadline."""

    def __init__(self, deadline_s: float | None, elapsed_before_s: float = 0.0) -> None:
        self.deadline_s = deadline_s
        self._before = elapsed_before_s
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return self._before + time.monotonic() - self._started

    def remaining(self) -> float:
        return math.inf if self.deadline_s is None else max(0.0, self.deadline_s - self.elapsed())

    def expired(self) -> bool:
        return self.remaining() <= 0

    def loop_deadline(self) -> float:
        """The deadline on the event loop's clock, for `anyio.CancelScope(deadline=...)`."""
        return anyio.current_time() + self.remaining()
