"""An agent's JSONL record as the console reads it: followed incrementally, paged by line.

A day-long record runs to hundreds of megabytes, so nothing here reads a record twice: each
refresh reads only the bytes appended since the last one, folds them into the same
`AgentProgress` the client keeps, and remembers where every line starts, so that any page of
the transcript is one seek and a few dozen lines away.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.record import AgentProgress

PAGE_EVENTS = 50
SUBMIT_BUDGET = "submission budget spent"
"""How the PGR server words a submission refused for its hourly budget."""
LIMIT_HIT = re.compile(r'"limit_hit":\s*"(\w+)"')
SERVER_LIMIT = re.compile(r"\(setting (AAR_[A-Z0-9_]+)(?: field (\w+))?\)")
"""How a server's refusal names the limit it hit: `(setting AAR_X)`, or `(setting AAR_X field y)` for one field."""


@dataclass
class Activity:
    """What the record says the agent is doing now (the live run knows better; see `AgentStatus`)."""

    last_event_at: float | None = None
    doing: str = "not started"
    paused: bool = False


@dataclass
class FollowedRecord:
    """One agent's record, read up to `offset`: progress, activity and the byte offset of every line."""

    path: Path
    progress: AgentProgress = field(default_factory=AgentProgress)
    activity: Activity = field(default_factory=Activity)
    line_starts: list[int] = field(default_factory=list)
    offset: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    """Tool calls the client refused (not allowed, budget spent), each with the call's input."""
    limit_hits: list[dict[str, Any]] = field(default_factory=list)
    """Sandbox commands a limit stopped, each with the command."""
    submit_refusals: list[dict[str, Any]] = field(default_factory=list)
    """Submissions the PGR server refused for its hourly budget (quick evaluations are in its own audit)."""
    server_limits: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """Calls a server refused at a named limit, by tool and limit: how many, since when, and the latest
    (a flood of refusals stays one entry)."""
    _open_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self) -> None:
        """Read what was appended since the last refresh (complete lines only)."""
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as record:
                record.seek(self.offset)
                chunk = record.read()
            end = chunk.rfind(b"\n") + 1
            position = self.offset
            for line in chunk[:end].splitlines(keepends=True):
                self.line_starts.append(position)
                position += len(line)
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.progress.apply(event)
                self._note(event)
            self.offset += end

    def _note(self, event: dict[str, Any]) -> None:
        activity = self.activity
        activity.last_event_at = event["t"]
        kind = event["type"]
        if kind == "tool_call":
            activity.doing = f"calling {event['name']}"
            self._open_calls[event["id"]] = event
        elif kind == "tool_result":
            activity.doing = "thinking"
            self._evidence(event, self._open_calls.pop(event["id"], {}).get("input"))
        elif kind in ("message", "model_call", "session"):
            activity.doing = "thinking"
        elif kind == "steering":
            activity.paused = event["action"] == "paused"
            activity.doing = "paused" if activity.paused else "thinking"
        elif kind == "stop":
            activity.doing = f"stopped: {event['reason']}"
            activity.paused = False

    def _evidence(self, result: dict[str, Any], call_input: Any) -> None:
        found = {"t": result["t"], "tool": result["name"], "input": call_input, "result": result["content"][:2000]}
        if result.get("refused"):
            self.refused.append({**found, "reason": result["refused"]})
        if result["name"] == "pgr__submit" and result["is_error"] and SUBMIT_BUDGET in result["content"]:
            self.submit_refusals.append(found)
        hit = LIMIT_HIT.search(result["content"]) if result["name"] == "sandbox__exec" else None
        if hit:
            self.limit_hits.append({**found, "limit": hit.group(1)})
        named = SERVER_LIMIT.search(result["content"]) if result["is_error"] else None
        if named:
            limit = " ".join(part for part in named.groups() if part)
            earlier = self.server_limits.get((result["name"], limit), {"count": 0, "first": result["t"]})
            self.server_limits[(result["name"], limit)] = {
                **found,
                "limit": limit,
                "count": earlier["count"] + 1,
                "first": earlier["first"],
            }

    @property
    def events(self) -> int:
        return len(self.line_starts)

    def pages(self) -> int:
        return max(1, -(-self.events // PAGE_EVENTS))

    def page(self, number: int) -> list[dict[str, Any]]:
        """Events of page `number` (1-based), oldest first; reads only that page's bytes."""
        return self._window((number - 1) * PAGE_EVENTS)

    def latest(self) -> list[dict[str, Any]]:
        """The newest PAGE_EVENTS events, oldest first: what a transcript opens on. The last page
        alone can hold a single event, which says nothing about the agent's latest turns."""
        return self._window(max(0, self.events - PAGE_EVENTS))

    def _window(self, first: int) -> list[dict[str, Any]]:
        """Up to PAGE_EVENTS events from index `first` (0-based), numbered from 1; one seek and read."""
        with self._lock:
            starts = self.line_starts[first : first + PAGE_EVENTS + 1]
            if not starts:
                return []
            stop = starts[-1] if len(starts) > PAGE_EVENTS else self.offset
            with self.path.open("rb") as record:
                record.seek(starts[0])
                chunk = record.read(stop - starts[0])
        events = []
        for index, line in enumerate(chunk.splitlines()):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"type": "unreadable", "t": None, "text": line[:200].decode(errors="replace")}
            event["number"] = first + index + 1
            events.append(event)
        return events
