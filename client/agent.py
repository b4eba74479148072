"""One researcher's loop: ask the model, run the tools it calls, record everything, until a budget ends it.

Each step is written to the agent's record before the next begins, and the in-memory state is
only ever changed by folding that same event into `AgentProgress`, so what a resumed run rebuilds
is exactly what the live run had. Nothing an agent meets (a failing model, a dead server, a tool
that hangs, a crash in this code) escapes `run`: it ends this agent with its reason recorded and
leaves the rest of the team alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from client import budget as budgets
from client.backends.anthropic import MessagesBackend, ModelError, Reply, RetryNotice
from client.bridge import ToolBridge, ToolOutcome
from client.context import compacted_head, kept_turns, summary_request
from client.costs import Price, cost
from client.manifest import Budget, Context
from client.record import INTERRUPTED, AgentLog, AgentProgress, is_terminal
from client.steering import AgentControl

logger = logging.getLogger(__name__)

NUDGE = (
    "(automatic message) Keep going: you have {left} left. Work on your direction, build on what the "
    "others post, and post what you find with its snapshot and submission. If you have nothing left to "
    "try, answer with just DONE."
)
FINAL_STATES = ("done", "failed", "flagged", "quarantined")
POLL_S = 5.0


class StopAgent(Exception):
    """Ends the agent's work with a recorded reason."""


@dataclass
class AgentStatus:
    """What the live view shows of an agent."""

    state: str = "starting"
    tool: str = ""
    note: str = ""


@dataclass
class TeamView:
    """What an agent sees of the team: every agent's progress (for team budgets) and the clock."""

    progresses: list[AgentProgress]
    budget: Budget
    clock: budgets.RunClock
    finish_s: float
    submitting: int = 0
    """Submissions in flight: counted against the team's budget before the server answers."""


@dataclass
class AgentConfig:
    name: str
    model: str
    max_tokens: int
    system: str
    kickoff: str
    budget: Budget
    price: Price
    context: Context


@dataclass
class Agent:
    config: AgentConfig
    backend: MessagesBackend
    bridge: ToolBridge
    log: AgentLog
    progress: AgentProgress
    team: TeamView
    status: AgentStatus = field(default_factory=AgentStatus)
    control: AgentControl = field(default_factory=AgentControl)
    _open_turn: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
    _states: dict[str, str | None] = field(default_factory=dict)
    """Last state seen of each submission (a poll that finds no change is not recorded)."""

    @property
    def name(self) -> str:
        return self.config.name

    def _record(self, event_type: str, /, **fields: Any) -> None:
        self.progress.apply(self.log.write(event_type, **fields))

    async def run(self) -> None:
        """Work until a budget, the deadline, a crash or an interrupt ends it; then collect queued scores."""
        if is_terminal(self.progress.stop_reason):
            self.status.state = f"stopped: {self.progress.stop_reason}"
            return
        if self.control.stop_reason is not None:
            self._record("session", model=self.config.model, resumed=True)
            self._stop(self.control.stop_reason)
            return
        resumed = bool(self.progress.messages)
        self._record("session", model=self.config.model, resumed=resumed)
        try:
            async with self.bridge.running():
                self._start_conversation()
                reason = await self._work()
                self._stop(reason)
                await self._collect_scores()
        except BaseException as error:
            self._close_open_turn()
            if isinstance(error, Exception):
                logger.exception("%s crashed", self.name)
                cause = _innermost(error)
                self._stop(f"crashed: {type(cause).__name__}: {cause}")
            else:
                self._stop("interrupted")
                raise

    def _stop(self, reason: str) -> None:
        if self.progress.stop_reason is None:
            self._record("stop", reason=reason)
            logger.info("%s stopped: %s", self.name, reason)
        self.status.state, self.status.tool = "stopped", ""
        self.status.note = self.progress.stop_reason or reason

    def _start_conversation(self) -> None:
        """A new agent gets its kickoff; one resumed mid-turn gets results for the calls that were cut off."""
        if not self.progress.messages:
            self._record("message", role="user", content=[{"type": "text", "text": self.config.kickoff}])
            return
        dangling = self.progress.dangling_tool_uses()
        if dangling:
            self._record("message", role="user", content=[_interrupted(use) for use in dangling])
        elif self.progress.messages[-1]["role"] == "assistant":
            self._record("message", role="user", content=[{"type": "text", "text": self._nudge()}])

    async def _work(self) -> str:
        clock = self.team.clock
        while True:
            reason = self.control.stop_reason or self._spent()
            if reason is not None:
                return reason
            with anyio.CancelScope(deadline=clock.loop_deadline()) as scope:
                self.control.turn_scope = scope
                try:
                    await self._wait_while_paused()
                    if self.control.stop_reason is None:
                        await self._turn()
                except StopAgent as stop:
                    return str(stop)
                finally:
                    self.control.turn_scope = None
            if scope.cancelled_caught:
                self._close_open_turn()
                return self.control.stop_reason or "deadline"

    async def _wait_while_paused(self) -> None:
        """Between turns: wait while a person has this agent paused (the deadline still runs)."""
        if self.control.paused_by is None:
            return
        self._record("steering", action="paused", by=self.control.paused_by)
        self.status.state, self.status.tool, self.status.note = "paused", "", f"by {self.control.paused_by}"
        await self.control.wait_while_paused()
        self.status.note = ""
        if self.control.stop_reason is None:
            self._record("steering", action="resumed")

    def _spent(self) -> str | None:
        if self.team.clock.expired():
            return "deadline"
        return budgets.spent(self.config.budget, [self.progress], "agent") or budgets.spent(
            self.team.budget, self.team.progresses, "team"
        )

    async def _turn(self) -> None:
        if self._should_compact():
            await self._compact()
        self.status.state, self.status.tool = "thinking", ""
        try:
            reply = await self._call_model(self.progress.messages, purpose="turn")
        except ModelError as error:
            if not error.prompt_too_long or not self.progress.messages:
                raise StopAgent(f"model error: {error}") from None
            await self._compact()
            reply = await self._call_model(self.progress.messages, purpose="turn")
        self._record("message", role="assistant", content=reply.content)
        uses = [block for block in reply.content if block["type"] == "tool_use"]
        if uses:
            results: list[dict[str, Any]] = []
            self._open_turn = (uses, results)
            for use in uses:
                results.append(await self._use_tool(use))
            self._open_turn = None
            self._record("message", role="user", content=results)
            return
        text = " ".join(block.get("text", "") for block in reply.content if block["type"] == "text").strip()
        if reply.stop_reason == "refusal":
            raise StopAgent("the model refused to continue")
        if text == "DONE":
            raise StopAgent("done")
        self._record("message", role="user", content=[{"type": "text", "text": self._nudge()}])

    def _should_compact(self) -> bool:
        """Near the limit, and with more turns than would be kept (else a summary would not shrink anything)."""
        turns = sum(message["role"] == "assistant" for message in self.progress.messages)
        return (
            self.progress.context_tokens >= self.config.context.compact_at_tokens
            and turns > self.config.context.keep_recent_turns
        )

    async def _call_model(
        self,
        messages: list[dict[str, Any]],
        *,
        purpose: str,
        tool_choice: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Reply:
        try:
            reply = await self.backend.create(
                agent=self.name,
                model=self.config.model,
                max_tokens=max_tokens or self.config.max_tokens,
                system=self.config.system,
                tools=self.bridge.tools,
                messages=messages,
                tool_choice=tool_choice,
                on_retry=self._on_retry,
            )
        finally:
            self.status.note = ""
        self._record(
            "model_call",
            purpose=purpose,
            usage=reply.usage.as_dict(),
            dollars=round(cost(reply.usage, self.config.price), 6),
            model_s=round(reply.model_s, 4),
            stop_reason=reply.stop_reason,
            request_id=reply.request_id,
        )
        return reply

    def _on_retry(self, notice: RetryNotice) -> None:
        self._record("retry", attempt=notice.attempt, error=notice.error, status=notice.status, wait_s=notice.wait_s)
        self.status.note = f"retry {notice.attempt}: {notice.error[:40]}"

    async def _compact(self) -> None:
        """Replace the conversation by the agent's own summary and its last turns."""
        self.status.state = "compacting"
        before = self.progress.context_tokens
        reply = await self._call_model(
            summary_request(self.progress.messages),
            purpose="compaction",
            tool_choice={"type": "none"},
            max_tokens=self.config.context.summary_max_tokens,
        )
        summary = "\n".join(block.get("text", "") for block in reply.content if block["type"] == "text")
        kept = kept_turns(self.progress.messages, self.config.context.keep_recent_turns)
        head = compacted_head(self.config.kickoff, summary or "(no summary was written)")
        self._record("compaction", head=head, kept=kept, before_tokens=before)

    async def _use_tool(self, use: dict[str, Any]) -> dict[str, Any]:
        name, arguments = use["name"], use["input"]
        self._record("tool_call", id=use["id"], name=name, input=arguments)
        self.status.state, self.status.tool = "tool", name
        if name == "pgr__submit":
            outcome = await self._submit(arguments)
        else:
            outcome = await self.bridge.call(name, arguments)
        self._record(
            "tool_result",
            id=use["id"],
            name=name,
            is_error=outcome.is_error,
            refused=outcome.refused,
            duration_s=outcome.duration_s,
            content=outcome.text,
        )
        self._observe(name, outcome)
        return {"type": "tool_result", "tool_use_id": use["id"], "content": outcome.text, "is_error": outcome.is_error}

    async def _submit(self, arguments: dict[str, Any]) -> ToolOutcome:
        """A PGR submission, if the agent's and the team's submission budgets allow it."""
        reason = budgets.submissions_spent(self.config.budget, [self.progress], "your") or budgets.submissions_spent(
            self.team.budget, self.team.progresses, "the team's", in_flight=self.team.submitting
        )
        if reason is not None:
            return ToolOutcome(
                text=f"refused: {reason}; keep improving and post results instead", is_error=True, refused=reason
            )
        self.team.submitting += 1
        try:
            return await self.bridge.call("pgr__submit", arguments)
        finally:
            self.team.submitting -= 1

    def _observe(self, name: str, outcome: ToolOutcome) -> None:
        """Note submissions and scores as they pass, for budgets, the live view and the summary."""
        data = outcome.structured
        if outcome.is_error or data is None:
            return
        if name == "pgr__submit" and data.get("id"):
            self._record("submission", id=data["id"])
        elif name == "pgr__submission" and data.get("id"):
            state = data.get("state")
            if self._states.get(data["id"]) == state:
                return  # polled again, nothing new
            self._states[data["id"]] = state
            self._record(
                "score",
                kind="submission",
                id=data["id"],
                state=state,
                pgr=data.get("pgr_mean"),
                final=state in FINAL_STATES,
            )
        elif name == "pgr__evaluate_predictions":
            self._record("score", kind="validation", task=data.get("task"), pgr=data.get("pgr"))

    async def _collect_scores(self) -> None:
        """After the work ends, wait (bounded) for the official scores of queued submissions."""
        if not self.progress.pending:
            return
        self.status.state = "awaiting scores"
        with anyio.move_on_after(self.team.finish_s):
            while self.progress.pending:
                for submission in list(self.progress.pending):
                    outcome = await self.bridge.call("pgr__submission", {"submission_id": submission}, internal=True)
                    self._observe("pgr__submission", outcome)
                if self.progress.pending:
                    await anyio.sleep(POLL_S)  # another process scores them; there is no event to wait on

    def _close_open_turn(self) -> None:
        """Give every tool call of an interrupted turn a result, so the conversation stays valid."""
        if self._open_turn is None:
            return
        uses, results = self._open_turn
        self._open_turn = None
        done = {result["tool_use_id"] for result in results}
        content = results + [_interrupted(use) for use in uses if use["id"] not in done]
        self._record("message", role="user", content=content)

    def _nudge(self) -> str:
        return NUDGE.format(left=budgets.describe_left(self.config.budget, self.progress, self.team.clock))


def _innermost(error: Exception) -> Exception:
    """The exception inside task-group wrappers, which is what the record should name."""
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _interrupted(use: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": use["id"], "content": INTERRUPTED, "is_error": True}
