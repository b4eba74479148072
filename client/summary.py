"""The end of a run: one row per agent and the team's totals, as summary.json and summary.txt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from client.record import AgentProgress, RunDir


def build_summary(
    *,
    run_dir: RunDir,
    manifest_name: str,
    backend: str,
    model: str,
    elapsed_s: float,
    progresses: Mapping[str, AgentProgress],
    interrupted: bool,
    stopped: str | None = None,
) -> dict[str, Any]:
    """`stopped`: why the whole run was stopped (an error that concerns every agent), if it was."""
    agents: list[dict[str, Any]] = [
        {
            "agent": name,
            "stop_reason": p.stop_reason,
            "turns": p.turns,
            "tokens": p.usage.total,
            "dollars": round(p.dollars, 4),
            "tool_calls": p.tool_calls,
            "tool_errors": p.tool_errors,
            "refusals": p.refusals,
            "retries": p.retries,
            "compactions": p.compactions,
            "submissions": len(p.submissions),
            "unscored_submissions": len(p.pending),
            "best_validation_pgr": p.best_validation_pgr,
            "best_pgr": p.best_pgr,
            "best_submission": p.best_submission,
            "best_results": p.best_results,
        }
        for name, p in progresses.items()
    ]
    scored = [row for row in agents if row["best_pgr"] is not None]
    best = max(scored, key=lambda row: row["best_pgr"], default=None)
    validated = [row["best_validation_pgr"] for row in agents if row["best_validation_pgr"] is not None]
    return {
        "run_dir": str(run_dir.path),
        "manifest": manifest_name,
        "backend": backend,
        "model": model,
        "interrupted": interrupted,
        "stopped": stopped,
        "elapsed_s": round(elapsed_s, 1),
        "team": {
            "agents": len(agents),
            "turns": sum(row["turns"] for row in agents),
            "tokens": sum(row["tokens"] for row in agents),
            "dollars": round(sum(row["dollars"] for row in agents), 4),
            "tool_calls": sum(row["tool_calls"] for row in agents),
            "submissions": sum(row["submissions"] for row in agents),
            "best_pgr": best["best_pgr"] if best else None,
            "best_pgr_agent": best["agent"] if best else None,
            "best_pgr_submission": best["best_submission"] if best else None,
            "best_pgr_tasks": {row["task"]: row.get("pgr_mean") for row in best["best_results"]} if best else {},
            "best_pgr_public": _public_mean(best["best_results"]) if best else None,
            "best_validation_pgr": max(validated, default=None),
        },
        "agents": agents,
    }


def _public_mean(results: list[dict[str, Any]]) -> float | None:
    """Mean PGR over the public tasks alone: what the research brief's baseline table averages over."""
    public = [row["pgr_mean"] for row in results if not row.get("secret") and row.get("pgr_mean") is not None]
    return round(sum(public) / len(public), 4) if public else None


def write_summary(run_dir: RunDir, summary: dict[str, Any], text: str) -> None:
    (run_dir.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (run_dir.path / "summary.txt").write_text(text)
