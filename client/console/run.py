"""A run as the console shows it: its directory, its agents' records, its servers' data, and (live) its team.

The same view serves a finished run (`aar console RUN`) and the run in progress (`aar run`),
from the same files; the live run adds what only its process knows, each agent's current
status and the controls a person steers it with.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from client.agent import AgentStatus
from client.console.front import ServerLinks
from client.console.plot import Point
from client.console.records import FollowedRecord
from client.console.sources import ServerData
from client.record import RunDir
from client.steering import ActionLog, TeamControls

MEAN_CHART = "mean over tasks"


@dataclass
class LiveTeam:
    """What only the process running the team knows."""

    statuses: Mapping[str, AgentStatus]
    controls: TeamControls
    notes: list[str] = field(default_factory=list)
    """What the run announced while starting (e.g. the PGR server preparing its tasks), newest last."""
    servers: ServerLinks | None = None
    """The run's servers once they are up, with the operators' tokens: the console writes through them."""


class RunView:
    """Everything the console's pages read, for one run directory."""

    def __init__(self, run_dir: RunDir, live: LiveTeam | None = None) -> None:
        self.run_dir = run_dir
        self.live = live
        self.actions = live.controls.log if live else ActionLog(run_dir.steering_path)
        self.servers = ServerData(run_dir.servers_dir)
        self._records: dict[str, FollowedRecord] = {}
        info = run_dir.read_info()
        self._manifest: dict[str, Any] = info["manifest"]  # fixed for the run's life (a resume reuses it)
        self._started_at = datetime.fromisoformat(info["created_at"]).timestamp()

    @property
    def name(self) -> str:
        return self.run_dir.path.name

    def info(self) -> dict[str, Any]:
        """run.json as it is now (a live run brings its elapsed time up to date every few seconds)."""
        return self.run_dir.read_info()

    def agents(self) -> list[str]:
        return [agent["name"] for agent in self._manifest["agents"]]

    def summary(self) -> dict[str, Any] | None:
        path = self.run_dir.path / "summary.json"
        return json.loads(path.read_text()) if path.exists() and self.live is None else None

    def record(self, agent: str) -> FollowedRecord:
        """The agent's record, brought up to date (raises KeyError for an agent not in this run)."""
        record = self._records.get(agent)
        if record is None:
            if agent not in self.agents():
                raise KeyError(agent)
            record = self._records.setdefault(agent, FollowedRecord(self.run_dir.agent_log_path(agent)))
        record.refresh()
        return record

    def team(self) -> dict[str, Any]:
        """The team page: one row per agent, and the team's spend against its budget."""
        manifest = self._manifest
        last_posts = self.servers.forum.last_posts()
        rows = []
        for spec in manifest["agents"]:
            name = spec["name"]
            record = self.record(name)
            progress, activity = record.progress, record.activity
            status = self.live.statuses.get(name) if self.live else None
            if status is not None:
                state = status.state
                doing = status.tool or status.note
            else:
                state = "paused" if activity.paused else ("stopped" if progress.stop_reason else "working")
                doing = progress.stop_reason or activity.doing
            control = self.live.controls.agents.get(name) if self.live else None
            rows.append(
                {
                    "name": name,
                    "direction": spec["direction"],
                    "state": state,
                    "doing": doing,
                    "stop_reason": progress.stop_reason,
                    "paused_by": control.paused_by if control else None,
                    "turns": progress.turns,
                    "tokens": progress.usage.total,
                    "dollars": progress.dollars,
                    "submissions": len(progress.submissions),
                    "best_pgr": progress.best_pgr,
                    "best_submission": progress.best_submission,
                    "best_validation_pgr": progress.best_validation_pgr,
                    "last_post": last_posts.get(name),
                    "last_event_at": activity.last_event_at,
                }
            )
        team_budget = manifest["budget"]["team"]
        info = self.info()
        return {
            "rows": rows,
            "dollars": sum(row["dollars"] for row in rows),
            "dollars_budget": team_budget.get("dollars"),
            "submissions": sum(row["submissions"] for row in rows),
            "submissions_budget": team_budget.get("pgr_submissions"),
            "turns": sum(row["turns"] for row in rows),
            "elapsed_s": info.get("elapsed_s", 0.0),
            "deadline_s": manifest["budget"].get("deadline"),
            "live": self.live is not None,
            "notes": self.live.notes[-3:] if self.live else [],
        }

    def chart_points(self) -> dict[str, list[Point]]:
        """Every official submission's score at its minutes since the run began: its mean over tasks
        (what the leaderboard ranks; standard errors combined as independent), then per task."""
        started = self._started_at
        mean: list[Point] = []
        tasks: dict[str, list[Point]] = {}
        for submission in self.servers.pgr.submissions(state="done"):
            minutes = ((submission["finished_at"] or time.time()) - started) / 60
            errors = [row.get("pgr_se") for row in submission["results"] if row.get("pgr_mean") is not None]
            se = math.sqrt(sum(e * e for e in errors)) / len(errors) if errors and None not in errors else None
            if submission["pgr_mean"] is not None:
                mean.append(Point(submission["id"], submission["agent"], minutes, submission["pgr_mean"], se))
            for row in submission["results"]:
                if row.get("pgr_mean") is None:
                    continue
                tasks.setdefault(row["task"], []).append(
                    Point(submission["id"], submission["agent"], minutes, row["pgr_mean"], row.get("pgr_se"))
                )
        return {MEAN_CHART: mean, **dict(sorted(tasks.items()))}

    def integrity(self) -> dict[str, Any]:
        """Everything an auditor looks at first, each item with its evidence."""
        refused, limit_hits, submit_refusals, server_limits = [], [], [], []
        for agent in self.agents():
            record = self.record(agent)
            refused += [{**item, "agent": agent} for item in record.refused]
            submit_refusals += [{**item, "agent": agent} for item in record.submit_refusals]
            server_limits += [{**item, "agent": agent} for item in list(record.server_limits.values())]
            limit_hits += [{**item, "agent": agent, "source": "exec"} for item in record.limit_hits]
        for job in self.servers.limit_hits():
            limit_hits.append(
                {
                    "t": job["finished_at"] or job["created_at"],
                    "agent": job["owner"],
                    "source": f"job {job['id']} ({job['sandbox']})",
                    "limit": job["limit_hit"],
                    "input": job["command"],
                    "result": job["error"] or f"exit code {job['exit_code']}",
                }
            )
        return {
            "flagged": self.servers.pgr.submissions(state="flagged"),
            "quarantined": self.servers.pgr.submissions(state="quarantined"),
            "rate_limited": self.servers.pgr.refused_evaluations(),
            "submit_refusals": sorted(submit_refusals, key=lambda item: item["t"], reverse=True),
            "server_limits": sorted(server_limits, key=lambda item: item["t"], reverse=True),
            "refused": sorted(refused, key=lambda item: item["t"], reverse=True),
            "limit_hits": sorted(limit_hits, key=lambda item: item["t"] or 0, reverse=True),
            "actions": list(reversed(self.actions.entries())),
        }
