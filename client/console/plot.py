"""PGR over time as an SVG drawn on the server: no script, no CDN, nothing fetched by the browser.

One chart per task: every official submission as a point (its PGR mean over seeds, with a bar of
one standard error), coloured by agent, at the time it was scored; the team's running best as a
step line; the weak teacher (PGR 0) and the ground-truth ceiling (PGR 1) as reference lines.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 20, 44
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip


@dataclass(frozen=True)
class Point:
    """One official submission's score on one task."""

    submission: str
    agent: str
    minutes: float
    pgr: float
    se: float | None


def agent_colours(agents: list[str]) -> dict[str, str]:
    return {agent: PALETTE[index % len(PALETTE)] for index, agent in enumerate(agents)}


def _ticks(low: float, high: float, count: int = 7) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    rough = (high - low) / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= rough)
    first = math.ceil(low / step - 1e-9) * step
    return [first + step * index for index in range(int((high - first) / step + 1e-9) + 1)]


def pgr_chart(task: str, points: list[Point], colours: dict[str, str], span_minutes: float) -> str:
    """The SVG of one task's chart."""
    values = [p.pgr + sign * (p.se or 0) for p in points for sign in (-1, 1)]
    low, high = min([-0.2, *values]), max([1.2, *values])
    span = max(span_minutes, *(p.minutes for p in points), 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(minutes: float) -> float:
        return LEFT + plot_w * minutes / span

    def y(pgr: float) -> float:
        return TOP + plot_h * (high - pgr) / (high - low)

    parts = [
        (
            f'<svg class="pgr-chart" data-task="{escape(task)}" xmlns="http://www.w3.org/2000/svg" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
            f'aria-label="PGR over time on {escape(task)}">'
        ),
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    for tick in _ticks(low, high):
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{tick:.1f}</text>')
    for tick in _ticks(0, span):
        label = f"{tick:g}"
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">{label}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle" class="axis">minutes into the run</text>'
        f'<text x="14" y="{TOP + plot_h / 2}" transform="rotate(-90 14 {TOP + plot_h / 2})" text-anchor="middle"'
        ' class="axis">PGR</text>'
    )
    for level, label, colour in ((0.0, "weak teacher (PGR 0)", "#b35806"), (1.0, "ceiling (PGR 1)", "#1b7837")):
        parts.append(
            f'<line class="level" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="{colour}" stroke-dasharray="6 4"/>'
            f'<text x="{LEFT + plot_w - 4}" y="{y(level) - 4:.1f}" text-anchor="end" fill="{colour}" '
            f'class="tick">{label}</text>'
        )
    ordered = sorted(points, key=lambda p: p.minutes)
    steps: list[tuple[float, float]] = []  # (minutes, best so far) wherever the best rises
    for point in ordered:
        if not steps or point.pgr > steps[-1][1]:
            steps.append((point.minutes, point.pgr))
    if steps:
        corners = [f"{x(steps[0][0]):.1f},{y(steps[0][1]):.1f}"]
        for (_, level), (minutes, higher) in itertools.pairwise(steps):
            corners += [f"{x(minutes):.1f},{y(level):.1f}", f"{x(minutes):.1f},{y(higher):.1f}"]
        corners.append(f"{x(span):.1f},{y(steps[-1][1]):.1f}")
        parts.append(
            f'<path class="running-best" d="M{" L".join(corners)}" fill="none" stroke="#000" stroke-width="1.5"/>'
        )
    for point in ordered:
        colour = colours.get(point.agent, "#333")
        cx, cy = x(point.minutes), y(point.pgr)
        if point.se:
            parts.append(
                f'<line class="error-bar" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(point.pgr - point.se):.1f}" '
                f'y2="{y(point.pgr + point.se):.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        se = "" if point.se is None else f" ± {point.se:.2f}"
        parts.append(
            f'<circle class="submission" data-submission="{escape(point.submission)}" cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="5" fill="{colour}"><title>{escape(point.agent)} {escape(point.submission)}: PGR '
            f"{point.pgr:.2f}{se} at {point.minutes:.1f} min</title></circle>"
        )
    legend_x = WIDTH - RIGHT + 14
    for index, (agent, colour) in enumerate(colours.items()):
        row = TOP + 14 + index * 16
        parts.append(
            f'<circle cx="{legend_x}" cy="{row - 4}" r="5" fill="{colour}"/>'
            f'<text x="{legend_x + 10}" y="{row}" class="tick">{escape(agent)}</text>'
        )
    row = TOP + 14 + len(colours) * 16 + 6
    parts.append(
        f'<line x1="{legend_x - 6}" x2="{legend_x + 6}" y1="{row - 4}" y2="{row - 4}" stroke="#000"'
        ' stroke-width="1.5"/>'
        f'<text x="{legend_x + 10}" y="{row}" class="tick">running best</text>'
    )
    if not points:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" class="axis">'
            "no official submission yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
