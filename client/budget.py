"""Budgets: what an agent and the team may still spend, and the run's wall clock.

Limits are checked before each model call. A call in flight reserves its estimated cost (its
prompt as if none of it were cached, and `max_tokens` of output), and other agents count that
reservation against the team's budget: so however many agents work at once, an agent or the team
goes over its token or dollar limit by at most one call. The deadline is different: it cancels
the turn in flight.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from client.costs import Price
from client.record import AgentProgress, Tally
from client.run_manifest import BudgetLimits

CHARS_PER_TOKEN_AT_MOST = 3
"""Tokens are estimated from characters; Claude's tokens average about 4 characters, so 3 overestimates."""


@dataclass(frozen=True)
class Reservation:
    """What a call in flight may cost at most (an estimate that errs high)."""

    tokens: int = 0
    dollars: float = 0.0

    def __add__(self, other: Reservation) -> Reservation:
        return Reservation(self.tokens + other.tokens, self.dollars + other.dollars)


def estimate(price: Price, max_tokens: int, prompt: Any) -> Reservation:
    """The most a call with this prompt (system, tools, messages) is expected to cost."""
    prompt_tokens = len(json.dumps(prompt, ensure_ascii=False)) // CHARS_PER_TOKEN_AT_MOST + 1
    input_price = max(price.input, price.cache_write if price.cache_write is not None else 1.25 * price.input)
    dollars = (prompt_tokens * input_price + max_tokens * price.output) / 1_000_000
    return Reservation(prompt_tokens + max_tokens, dollars)


def spent(budget: BudgetLimits, used: Tally, who: str, reserved: Iterable[Reservation] = ()) -> str | None:
    """Why `budget` is used up by `used` and the calls in flight, or None while some is left."""
    held = sum(reserved, Reservation())
    turns, tokens, dollars = used.turns, used.tokens, used.dollars
    in_flight = " and calls in flight" if held.tokens else ""
    if budget.turns is not None and turns >= budget.turns:
        return f"{who} budget: turns ({turns} of {budget.turns})"
    if budget.tokens is not None and tokens + held.tokens >= budget.tokens:
        return f"{who} budget: tokens ({tokens:,}{in_flight} of {budget.tokens:,})"
    if budget.dollars is not None and dollars + held.dollars >= budget.dollars:
        return f"{who} budget: dollars (${dollars:.2f}{in_flight} of ${budget.dollars:.2f})"
    return None


def describe_left(budget: BudgetLimits, progress: AgentProgress, clock: RunClock) -> str:
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
