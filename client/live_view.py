"""What a person watching the run sees: a live table per agent on stderr, and the final summary table."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from client.agent import AgentStatus
from client.budget import RunClock
from client.record import AgentProgress

NOTE_WIDTH = 60
"""Notes and stop reasons wrap at this width (whole, never cut)."""


def _pgr(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def status_table(
    title: str, clock: RunClock, rows: list[tuple[str, AgentStatus, AgentProgress]], limit: int = 60
) -> Group:
    """One line per agent (the first `limit` of them): state, current tool, turns, tokens, dollars, PGR."""
    table = Table(expand=False, header_style="bold")
    for column in ("agent", "state", "tool", "turns", "tokens", "$", "val PGR", "best PGR"):
        table.add_column(
            column, justify="right" if column in ("turns", "tokens", "$", "val PGR", "best PGR") else "left"
        )
    table.add_column("note", overflow="fold", max_width=NOTE_WIDTH)
    for name, status, progress in rows[:limit]:
        table.add_row(
            name,
            status.state,
            status.tool,
            str(progress.turns),
            f"{progress.usage.total:,}",
            f"{progress.dollars:.2f}",
            _pgr(progress.best_validation_pgr),
            _pgr(progress.best_pgr),
            status.note or "",
        )
    elapsed = clock.elapsed()
    deadline = "" if clock.deadline_s is None else f" of {clock.deadline_s / 60:.1f}"
    dollars = sum(progress.dollars for _, _, progress in rows)
    more = f" (showing {limit} of {len(rows)})" if len(rows) > limit else ""
    header = Text(f"{title}: {elapsed / 60:.1f}{deadline} min, ${dollars:.2f}{more}", style="bold")
    return Group(header, table)


def summary_table(summary: dict[str, Any]) -> Group:
    table = Table(header_style="bold", title="AAR Lab run summary")
    columns = ("agent", "stopped", "turns", "tokens", "$", "tools", "errors", "subm.", "val PGR", "best PGR")
    for column in columns:
        if column == "stopped":
            table.add_column(column, overflow="fold", max_width=NOTE_WIDTH)
        else:
            table.add_column(column, justify="left" if column == "agent" else "right")
    for row in summary["agents"]:
        table.add_row(
            row["agent"],
            row["stop_reason"] or "-",
            str(row["turns"]),
            f"{row['tokens']:,}",
            f"{row['dollars']:.2f}",
            str(row["tool_calls"]),
            str(row["tool_errors"]),
            str(row["submissions"]),
            _pgr(row["best_validation_pgr"]),
            _pgr(row["best_pgr"]),
        )
    team = summary["team"]
    table.add_section()
    totals = [str(team["turns"]), f"{team['tokens']:,}", f"{team['dollars']:.2f}", str(team["tool_calls"]), ""]
    scores = [str(team["submissions"]), _pgr(team["best_validation_pgr"]), _pgr(team["best_pgr"])]
    table.add_row(f"team ({team['agents']})", "", *totals, *scores)
    if team["best_pgr"] is not None:
        best = f"best PGR {team['best_pgr']:.2f} by {team['best_pgr_agent']} (submission {team['best_pgr_submission']})"
        per_task = ", ".join(f"{task} {_pgr(pgr)}" for task, pgr in team.get("best_pgr_tasks", {}).items())
        best += f"\nper task: {per_task}" if per_task else ""
        if team.get("best_pgr_public") is not None:
            best += f" (public tasks' mean {team['best_pgr_public']:.2f}: the brief's baseline table averages these)"
    else:
        best = "best PGR: none scored"
    scripted = summary["backend"] == "scripted"
    priced = f" (dollars: what these tokens would cost with {summary['model']})" if scripted else ""
    footer = Text(
        f"{best}; backend {summary['backend']} ({summary['model']}){priced}; {summary['elapsed_s'] / 60:.1f} min"
        + ("; interrupted" if summary["interrupted"] else "")
        + (f"\nstopped: {summary['stopped']}" if summary.get("stopped") else "")
        + f"\nrun directory: {summary['run_dir']}"
    )
    return Group(table, footer)


def render_text(renderable: Any, width: int = 130) -> str:
    """Plain text of a rich renderable (summary.txt, logs)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False).print(renderable)
    return buffer.getvalue()


@contextlib.contextmanager
def live_view(render: Callable[[], Group], *, enabled: bool) -> Iterator[None]:
    """A live table on stderr, redrawn twice a second (only on a terminal unless forced)."""
    if not enabled:
        yield
        return
    console = Console(stderr=True)
    with Live(get_renderable=render, console=console, refresh_per_second=2, transient=False, redirect_stdout=False):
        # log lines go through Live's stderr proxy, which prints them above the table instead of through it
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        previous = [handler.setStream(sys.stderr) for handler in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)
