"""The run directory: the manifest as run, one JSONL record per agent, the summary.

Every event an agent goes through (each message of its conversation, model call with its
usage and cost, tool call and result, refusal, retry, compaction, score, stop) is one JSON line,
flushed when it happens, so a `kill -9` loses at most the line being written. The record is
also the state: `AgentProgress.from_events` rebuilds the conversation and the counters, which is
how `aar run --resume` continues each agent where it stopped.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from client.costs import Usage
from client.steering import STOPPED_BY

logger = logging.getLogger(__name__)

THINKING_TYPES = ("thinking", "redacted_thinking")
INTERRUPTED = "interrupted: the run stopped during this call, which may or may not have taken effect; check first"


def is_terminal(stop_reason: str | None) -> bool:
    """Whether a resumed run leaves the agent stopped: it said it was done, or a person stopped it."""
    return stop_reason is not None and (stop_reason == "done" or stop_reason.startswith(STOPPED_BY))


class RunDir:
    """A run's directory: run.json, manifest.toml, agents/NAME.jsonl, summary.json and summary.txt."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, runs_root: Path, name: str, manifest_text: str) -> RunDir:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = runs_root / f"{name}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = runs_root / f"{name}-{stamp}-{suffix}"
        (path / "agents").mkdir(parents=True)
        (path / "manifest.toml").write_text(manifest_text)
        return cls(path)

    @classmethod
    def existing(cls, path: Path) -> RunDir:
        if not (path / "run.json").is_file():
            raise FileNotFoundError(f"{path} is not a run directory (no run.json)")
        return cls(path)

    @property
    def servers_dir(self) -> Path:
        """Data of the servers this run launches."""
        return self.path / "servers"

    @property
    def steering_path(self) -> Path:
        """The log of every action a person took in the console (see `client.steering`)."""
        return self.path / "steering.jsonl"

    def agent_log_path(self, agent: str) -> Path:
        return self.path / "agents" / f"{agent}.jsonl"

    def read_info(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())  # type: ignore[no-any-return]

    def write_info(self, info: dict[str, Any]) -> None:
        """Replace run.json atomically (a kill mid-write leaves the old one)."""
        scratch = self.path / "run.json.tmp"
        scratch.write_text(json.dumps(info, indent=2) + "\n")
        scratch.replace(self.path / "run.json")


class AgentLog:
    """Appends an agent's events to its JSONL file, one flushed line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, event_type: str, /, **fields: Any) -> dict[str, Any]:
        event = {"t": round(time.time(), 4), "type": event_type, **fields}
        self._file.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        self._file.close()


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of a record; a torn last line (the client was killed mid-write) is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s:%d: skipping an unreadable line (torn by a kill?)", path, number)


@dataclass
class Tally:
    """What budgets count, summed over some agents and kept up to date as their events are applied:
    checking the team's budget before each call costs the same for 9 agents or 1,000."""

    turns: int = 0
    tokens: int = 0
    dollars: float = 0.0
    submissions: int = 0

    @classmethod
    def of(cls, progresses: Iterable[AgentProgress]) -> Tally:
        tally = cls()
        for progress in progresses:
            tally.turns += progress.turns
            tally.tokens += progress.usage.total
            tally.dollars += progress.dollars
            tally.submissions += len(progress.submissions)
        return tally


@dataclass
class AgentProgress:
    """What an agent has done: its conversation and counters, rebuilt from its record on resume."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    dollars: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0
    refusals: int = 0
    retries: int = 0
    compactions: int = 0
    submissions: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    best_pgr: float | None = None
    best_submission: str | None = None
    best_results: list[dict[str, Any]] = field(default_factory=list)
    """Per-task PGR of the best submission (secret transfer tasks included), as the scorer showed it."""
    best_validation_pgr: float | None = None
    stop_reason: str | None = None
    sessions: int = 0
    context_tokens: int = 0
    """Length of the conversation at the last turn, as the model counted it."""
    team: Tally | None = field(default=None, repr=False, compare=False)
    """The team's sums, which this agent's events from now on add to (see `Tally`)."""

    @classmethod
    def from_events(cls, events: Iterator[dict[str, Any]]) -> AgentProgress:
        progress = cls()
        for event in events:
            progress.apply(event)
        return progress

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one recorded event into the progress (the live agent and resume share this)."""
        kind = event["type"]
        if kind == "session":
            self.sessions += 1
            self.stop_reason = None
        elif kind == "message":
            self._append_message(event["role"], event["content"])
        elif kind == "compaction":
            kept = event["kept"]
            tail = self.messages[len(self.messages) - kept :] if kept else []
            self.messages = [event["head"], *tail]
            self.compactions += 1
            self.context_tokens = 0
        elif kind == "model_call":
            usage = Usage.from_api(event["usage"])
            self.usage = self.usage + usage
            self.dollars += event["dollars"]
            turn = event.get("purpose") == "turn"
            if self.team is not None:
                self.team.tokens += usage.total
                self.team.dollars += event["dollars"]
                self.team.turns += turn
            if turn:
                self.turns += 1
                self.context_tokens = usage.context_tokens + usage.output_tokens
        elif kind == "retry":
            self.retries += 1
        elif kind == "tool_result":
            self.tool_calls += 1
            self.tool_errors += bool(event["is_error"])
            self.refusals += bool(event.get("refused"))
        elif kind == "submission":
            self.submissions.append(event["id"])
            self.pending.append(event["id"])
            if self.team is not None:
                self.team.submissions += 1
        elif kind == "score":
            self._score(event)
        elif kind == "stop":
            self.stop_reason = event["reason"]

    def _append_message(self, role: str, content: str | list[dict[str, Any]]) -> None:
        """Add a message so that the conversation stays one the Messages API accepts.

        The API refuses empty messages and whitespace-only text; records from before empty replies
        were refused may hold some, and are repaired here (live and on resume alike). Two messages of
        the same role in a row (a paused turn continued; a nudge after a dropped empty reply) are one.
        """
        blocks = [block for block in _blocks(content) if block.get("type") != "text" or block.get("text", "").strip()]
        if not any(block.get("type") not in THINKING_TYPES for block in blocks):
            return
        if self.messages and self.messages[-1]["role"] == role:
            previous = self.messages[-1]
            self.messages[-1] = {"role": role, "content": [*_blocks(previous["content"]), *blocks]}
        else:
            self.messages.append({"role": role, "content": blocks})

    def _score(self, event: dict[str, Any]) -> None:
        pgr = event.get("pgr")
        if event["kind"] == "validation":
            if pgr is not None and (self.best_validation_pgr is None or pgr > self.best_validation_pgr):
                self.best_validation_pgr = pgr
            return
        if event["id"] in self.pending and event.get("final"):
            self.pending.remove(event["id"])
        if pgr is not None and event.get("state") == "done" and (self.best_pgr is None or pgr > self.best_pgr):
            self.best_pgr, self.best_submission = pgr, event["id"]
            self.best_results = list(event.get("results") or [])

    def dangling_tool_uses(self) -> list[dict[str, Any]]:
        """Tool calls of the last assistant message that never got results (the client died mid-turn)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            return []
        return [block for block in self.messages[-1]["content"] if block.get("type") == "tool_use"]


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
