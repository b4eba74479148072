"""One researcher's loop: ask the model, run the tools it calls, record everything, until a budget ends it.

Each step is written to the agent's record before the next begins, and the in-memory state is
only ever changed by folding that same event into `AgentProgress`, so what a resumed run rebuilds
is exactly what the live run had. Nothing an agent meets (a failing model, a dead server, a tool
that hangs, a crash in this code) escapes `run`: it ends this agent with its reason recorded and
leaves the rest of the team alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from client import budget as budgets
from client.backends.anthropic import AccessError, MessagesBackend, ModelError, Reply, RetryNotice
from client.bridge import ToolBridge, ToolOutcome
from client.context import compacted_head, earlier_notes, kept_turns, summary_requests
from client.costs import Price, cost
from client.manifest import Budget, Context, Retry
from client.record import INTERRUPTED, AgentLog, AgentProgress, Tally, is_terminal
from client.steering import AgentControl

logger = logging.getLogger(__name__)

NUDGE = (
    "(automatic message) Keep going: you have {left} left. Work on your direction, build on what the "
    "others post, and post what you find with its snapshot and submission. If you have nothing left to "
    "try, answer with just DONE."
)
EMPTY_REPLY_NUDGE = (
    "(automatic message) Your last reply was empty. Go on with your work: call a tool, or answer with just "
    "DONE if you have nothing left to try."
)
CUT_OFF = (
    "not run: your reply reached max_tokens ({max_tokens}) before this tool call was complete, so its input may "
    "be cut short (no call of this reply was run). Call it again with a smaller input (e.g. write a long file in "
    "parts)."
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

    tally: Tally
    """Turns, tokens, dollars and submissions of the whole team (kept by every agent's progress)."""
    budget: Budget
    clock: budgets.RunClock
    finish_s: float
    submitting: int = 0
    """Submissions in flight: counted against the team's budget before the server answers."""
    reserved: dict[str, budgets.Reservation] = field(default_factory=dict)
    """Each agent's model call in flight, at its estimated cost: counted against the team's budget."""
    stopped: str | None = None
    """Why the whole run stopped (an error that concerns every agent), once it has."""
    stop_all: Callable[[], None] = lambda: None
    """Cancels every agent's work (set by the team)."""
    _released: anyio.Event = field(default_factory=anyio.Event)

    def release(self, agent: str) -> None:
        """`agent`'s call is over: its reservation no longer counts (whoever waits on it checks again)."""
        self.reserved.pop(agent, None)
        self._released.set()
        self._released = anyio.Event()

    async def wait_for_release(self) -> None:
        await self._released.wait()

    def stop_run(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            self.stop_all()


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
    retry: Retry = field(default_factory=Retry)


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
            cause = _innermost(error) if isinstance(error, Exception) else error
            if isinstance(cause, AccessError):
                self._stop(str(cause))
                self.team.stop_run(str(cause))
            elif isinstance(cause, Exception):
                logger.exception("%s crashed", self.name)
                self._stop(f"crashed: {type(cause).__name__}: {cause}")
            else:
                self._stop(self.team.stopped or "interrupted")
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
        return budgets.spent(self.config.budget, Tally.of([self.progress]), "agent") or budgets.spent(
            self.team.budget, self.team.tally, "team"
        )

    async def _turn(self) -> None:
        if self._should_compact():
            await self._compact(self.config.context.keep_recent_turns)
        reply = await self._ask()
        if _has_content(reply.content):  # a refusal may have none
            self._record("message", role="assistant", content=reply.content)
        if reply.stop_reason == "refusal":
            raise StopAgent("the model refused to continue (stop_reason refusal)")
        if reply.stop_reason == "pause_turn":
            return  # the next call sends the paused turn back as it is, and the model goes on with it
        uses = [block for block in reply.content if block["type"] == "tool_use"]
        if uses and reply.stop_reason == "max_tokens":
            cut_off = CUT_OFF.format(max_tokens=self.config.max_tokens)
            self._record("message", role="user", content=[_error_result(use, cut_off) for use in uses])
            return
        if uses:
            results: list[dict[str, Any]] = []
            self._open_turn = (uses, results)
            for use in uses:
                results.append(await self._use_tool(use))
            self._open_turn = None
            self._record("message", role="user", content=results)
            return
        text = " ".join(block.get("text", "") for block in reply.content if block["type"] == "text").strip()
        if text == "DONE":
            raise StopAgent("done")
        self._record("message", role="user", content=[{"type": "text", "text": self._nudge()}])

    async def _ask(self) -> Reply:
        """The model's next reply with something in it (or a refusal).

        An empty reply is never recorded (the API would refuse the conversation after it): the
        model is asked again, a bounded number of times. A conversation too long for the model is
        compacted, then compacted to the notes alone, before the agent gives up.
        """
        empty = 0
        keep = [self.config.context.keep_recent_turns, 0]
        while True:
            self.status.state, self.status.tool = "thinking", ""
            try:
                reply = await self._call_model(self._with_nudge(empty), purpose="turn")
            except AccessError:
                raise
            except ModelError as error:
                if not error.prompt_too_long:
                    raise StopAgent(f"model error: {error}") from None
                if not keep:
                    raise StopAgent(
                        f"model error: the conversation does not fit the model even compacted to your notes ({error})"
                    ) from None
                await self._compact(keep.pop(0))
                continue
            if reply.stop_reason == "refusal" or _has_content(reply.content):
                return reply
            empty += 1
            self._record("empty_reply", count=empty, stop_reason=reply.stop_reason, request_id=reply.request_id)
            if empty >= self.config.retry.max_empty_replies:
                raise StopAgent(
                    f"model error: the model answered with no content {empty} times in a row"
                    f" (stop_reason {reply.stop_reason}; retry.max_empty_replies is {empty})"
                )

    def _with_nudge(self, empty_replies: int) -> list[dict[str, Any]]:
        """The conversation, asking the model (outside the record) to go on if its last reply was empty."""
        messages = self.progress.messages
        if not empty_replies:
            return messages
        nudge = {"type": "text", "text": EMPTY_REPLY_NUDGE}
        last = messages[-1]
        if last["role"] != "user":
            return [*messages, {"role": "user", "content": [nudge]}]
        return [*messages[:-1], {"role": "user", "content": [*last["content"], nudge]}]

    def _should_compact(self) -> bool:
        """Near the limit, and with more turns than would be kept (else a summary would not shrink anything)."""
        turns = sum(message["role"] == "assistant" for message in self.progress.messages)
        return (
            self.progress.context_tokens >= self.config.context.compact_at_tokens
            and turns > self.config.context.keep_recent_turns
        )

    async def _call_model(
        self, messages: list[dict[str, Any]], *, purpose: str, max_tokens: int | None = None
    ) -> Reply:
        """One model call once the budgets allow it, its estimated cost reserved while it is in flight."""
        max_tokens = max_tokens or self.config.max_tokens
        await self._wait_for_budget()
        prompt = (self.config.system, self.bridge.tools, messages)
        self.team.reserved[self.name] = budgets.estimate(self.config.price, max_tokens, prompt)
        state = self.status.state
        try:
            reply = await self.backend.create(
                agent=self.name,
                model=self.config.model,
                max_tokens=max_tokens,
                system=self.config.system,
                tools=self.bridge.tools,
                messages=messages,
                on_retry=self._on_retry,
            )
        finally:
            self.team.release(self.name)
            self.status.state, self.status.note = state, ""
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

    async def _wait_for_budget(self) -> None:
        """Stop if a budget is spent; wait while only other agents' calls in flight would spend it."""
        while True:
            reason = self._spent()
            if reason is not None:
                raise StopAgent(reason)
            if self.team.budget.tokens is None and self.team.budget.dollars is None:
                return  # calls in flight count only against a token or dollar limit; summing them costs O(team)
            others = [held for agent, held in self.team.reserved.items() if agent != self.name]
            if budgets.spent(self.team.budget, self.team.tally, "team", others) is None:
                return
            self.status.state = "waiting"
            self.status.note = "for the team's calls in flight (its budget is nearly spent)"
            await self.team.wait_for_release()

    def _on_retry(self, notice: RetryNotice) -> None:
        self._record(
            "retry",
            attempt=notice.attempt,
            error=notice.error,
            status=notice.status,
            wait_s=notice.wait_s,
            request_id=notice.request_id,
        )
        since = time.strftime("%H:%M:%S", time.localtime(notice.failing_since))
        self.status.state = "waiting"
        self.status.note = (
            f"model API failing since {since} ({notice.attempt} tries, last: {notice.error});"
            f" next try in {notice.wait_s:.0f} s"
        )

    async def _compact(self, keep_recent_turns: int) -> None:
        """Replace the conversation by the agent's own summary and its last turns.

        A summary that cannot be had (every request refused) or comes back empty keeps the notes of
        the last compaction: the conversation still shrinks, and nothing the agent wrote is lost.
        """
        self.status.state = "compacting"
        before = self.progress.context_tokens
        messages = self.progress.messages
        summary = ""
        for request in summary_requests(messages):
            try:
                reply = await self._call_model(
                    request, purpose="compaction", max_tokens=self.config.context.summary_max_tokens
                )
            except AccessError:
                raise
            except ModelError as error:
                if error.prompt_too_long:
                    continue  # a shorter request follows
                logger.warning("%s: the summary could not be written (%s); keeping the earlier notes", self.name, error)
                break
            summary = "\n".join(block.get("text", "") for block in reply.content if block["type"] == "text").strip()
            break
        notes = summary or earlier_notes(messages[0]) or "(no notes: the summary could not be written)"
        head = compacted_head(self.config.kickoff, notes)
        kept = kept_turns(messages, keep_recent_turns)
        self._record("compaction", head=head, kept=kept, before_tokens=before, summarised=bool(summary))

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
        reason = budgets.submissions_spent(
            self.config.budget, Tally.of([self.progress]), "your"
        ) or budgets.submissions_spent(self.team.budget, self.team.tally, "the team's", in_flight=self.team.submitting)
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
                results=data.get("results") or [],
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


def _has_content(content: list[dict[str, Any]]) -> bool:
    """Whether a reply can be recorded: the API refuses an assistant message without text or tool calls."""
    return any(block["type"] == "tool_use" or (block["type"] == "text" and block["text"].strip()) for block in content)


def _error_result(use: dict[str, Any], text: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": use["id"], "content": text, "is_error": True}


def _interrupted(use: dict[str, Any]) -> dict[str, Any]:
    return _error_result(use, INTERRUPTED)
