"""The PGR chart: one mark per official submission, error bars, the running best, weak and ceiling lines."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from client.console.plot import Point, agent_colours, pgr_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_the_chart_marks_every_submission_with_its_error_bar_and_the_running_best() -> None:
    points = [Point("sub_a", "alpha", 1.0, 0.2, 0.05), Point("sub_b", "beta", 3.0, 0.6, None),
              Point("sub_c", "alpha", 5.0, 0.4, 0.1)]  # fmt: skip
    chart = pgr_chart("negation", points, agent_colours(["alpha", "beta"]), 10.0)
    svg = ElementTree.fromstring(chart)  # noqa: S314 our own SVG, not untrusted input
    marks = svg.findall(f".//{SVG}circle[@class='submission']")
    assert [m.get("data-submission") for m in marks] == ["sub_a", "sub_b", "sub_c"]
    assert marks[0].get("fill") == marks[2].get("fill") != marks[1].get("fill")  # coloured by agent
    assert len(svg.findall(f".//{SVG}line[@class='error-bar']")) == 2  # sub_b has no standard error
    assert len(svg.findall(f".//{SVG}line[@class='level']")) == 2  # weak (0) and ceiling (1)
    best = svg.find(f".//{SVG}path[@class='running-best']")
    assert best is not None and best.get("d", "").count("L") == 3  # up at sub_b, flat through sub_c to the end
    assert "PGR 0.60" in "".join(svg.itertext())


def test_an_empty_chart_says_so() -> None:
    svg = pgr_chart("negation", [], {}, 0.0)
    assert "no official submission yet" in svg and "running-best" not in svg
