"""Steering: what a person may do to a live team (pause, resume, stop an agent), and the log of every action.

Every action a person takes in the console (these, and posting as a human or quarantining a
submission) is appended to the run's `steering.jsonl` with who took it, before it takes effect.
The log is also the state: a resumed run replays it, so an agent paused in one session stays
paused in the next, and one stopped by a person is not woken again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

STOPPED_BY = "stopped by "
"""Prefix of the stop reason of an agent a person stopped (see `record.is_terminal`)."""


class ActionLog:
    """The run's `steering.jsonl`: one line per action, flushed before the action takes effect."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, *, by: str, action: str, target: str, detail: str = "") -> dict[str, Any]:
        entry = {"t": round(time.time(), 3), "by": by, "action": action, "target": target, "detail": detail}
        with self._lock, self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every action, oldest first (a torn last line is skipped)."""
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries


@dataclass
class AgentControl:
    """One agent's steering state; the agent checks it between turns, a stop also cuts the current turn."""

    paused_by: str | None = None
    stopped_by: str | None = None
    turn_scope: anyio.CancelScope | None = None
    _changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def stop_reason(self) -> str | None:
        return None if self.stopped_by is None else f"{STOPPED_BY}{self.stopped_by}"

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_while_paused(self) -> None:
        """Return once the agent is resumed or stopped."""
        while self.paused_by is not None and self.stopped_by is None:
            await self._changed.wait()


class TeamControls:
    """The steering state of every agent of a live run, changed only through `act` (which logs first)."""

    def __init__(self, log: ActionLog, agents: list[str]) -> None:
        self.log = log
        self.agents = {name: AgentControl() for name in agents}
        for entry in log.entries():
            control = self.agents.get(entry["target"])
            if control is not None:
                self._apply(control, entry["action"], entry["by"])

    @staticmethod
    def _apply(control: AgentControl, action: str, by: str) -> None:
        if action == "pause":
            control.paused_by = by
        elif action == "resume":
            control.paused_by = None
        elif action == "stop":
            control.stopped_by = by

    def act(self, agent: str, action: str, by: str) -> dict[str, Any]:
        """Pause, resume or stop `agent` on behalf of `by`; raises ValueError for anything else."""
        control = self.agents.get(agent)
        if control is None:
            raise ValueError(f"no agent {agent!r} in this run: choose one of {', '.join(self.agents)}")
        if action not in ("pause", "resume", "stop"):
            raise ValueError(f"unknown action {action!r}: pause, resume or stop")
        entry = self.log.append(by=by, action=action, target=agent)
        self._apply(control, action, by)
        if action == "stop" and control.turn_scope is not None:
            control.turn_scope.cancel()
        control._notify()
        return entry
