"""The console in real headless Chromium against a real scripted run (servers, sandbox, PGR scoring and all).

While the team works: the team page refreshes itself, pause holds an agent's turns and resume
restarts them, a search finds a post, a person's post lands in the forum, and stop ends each
agent (which is how the test ends the run).
After the run: the plot shows exactly the submissions the PGR server scored, the leaderboard
links to them, and every page is kept as a screenshot under artifacts/console/.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from client.console.run import RunView
from client.console.serve import ConsoleOptions
from client.team import RunRequest, RunResult, run_team
from tests.console.support import chromium, events, have_chromium, screenshot, serving
from tests.support import TEST_SETTINGS, shipped_tasks

T = TypeVar("T")
STOPPED = ("stopped", "awaiting scores")
"""States of a stopped agent (one with a submission in the queue waits, bounded, for its official score)."""
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(1200)]


def _wait(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _fresh(read: Callable[[], T], timeout_s: float = 10.0) -> T:
    """`read` again while the page's own refresh is replacing the elements it reads (they may be gone for a moment)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except (StaleElementReferenceException, NoSuchElementException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _row(driver: Any, agent: str) -> dict[str, str]:
    """An agent's row as the page shows it now."""
    from selenium.webdriver.common.by import By

    def read() -> dict[str, str]:
        row = driver.find_element(By.CSS_SELECTOR, f'tr[data-agent="{agent}"]')
        return {"state": row.get_attribute("data-state"), "turns": row.find_element(By.CSS_SELECTOR, ".turns").text}

    return _fresh(read)


def _text(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return _fresh(lambda: str(driver.find_element(By.CSS_SELECTOR, selector).text))


def _click(driver: Any, selector: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(selector, lambda: driver.find_elements(By.CSS_SELECTOR, selector))
    driver.find_element(By.CSS_SELECTOR, selector).click()


def _turns(driver: Any, agent: str) -> int:
    return int(_row(driver, agent)["turns"])


def drive_live_console(base: str, run_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(base + "/")
        assert "Team" in driver.title
        _wait("the first turns", lambda: _turns(driver, "elicit") > 0, 300)
        seen = _turns(driver, "elicit")
        _wait("the team page to refresh itself", lambda: _turns(driver, "elicit") > seen)  # no reload in between
        screenshot(driver, "team-live")

        _click(driver, 'tr[data-agent="elicit"] button[name="pause"]')
        _wait("elicit to be paused", lambda: _row(driver, "elicit")["state"] == "paused", 120)
        held, others = _turns(driver, "elicit"), _turns(driver, "reweight")
        _wait("the rest of the team to go on", lambda: _turns(driver, "reweight") >= others + 3, 120)
        driver.refresh()
        assert _turns(driver, "elicit") == held, "a paused agent took turns"
        screenshot(driver, "team-paused")
        _click(driver, 'tr[data-agent="elicit"] button[name="resume"]')
        _wait("elicit to take turns again", lambda: _turns(driver, "elicit") > held, 60)

        _click(driver, 'tr[data-agent="combine"] button[name="stop"]')
        driver.switch_to.alert.accept()
        _wait("combine to stop", lambda: _row(driver, "combine")["state"].startswith(STOPPED), 120)

        with sqlite3.connect(run_dir / "servers" / "forum.sqlite") as forum:
            post_id, title = forum.execute("SELECT id, title FROM posts WHERE kind = 'claim' LIMIT 1").fetchone()
        word = max(title.split(), key=len).strip(":,.()")
        driver.get(base + "/forum")
        search = driver.find_element(By.NAME, "q")
        search.send_keys(word)
        search.submit()
        _wait(f"search results for {word!r}", lambda: f"/forum/threads/{post_id}" in driver.page_source, 30)
        screenshot(driver, "forum-search")

        driver.get(base + "/forum")
        driver.find_element(By.NAME, "title").send_keys("Please report seeds with every result")
        driver.find_element(By.NAME, "body").send_keys("A human asks: how many seeds stand behind each number?")
        driver.find_element(By.CSS_SELECTOR, "form.human-post button").click()
        _wait("the human post", lambda: "human:ada" in driver.page_source and "/forum/threads/" in driver.current_url)
        driver.get(base + "/transcripts/elicit")
        assert driver.find_elements(By.CSS_SELECTOR, "ol.events li.event-model_call .cost")  # the latest turns, costed
        screenshot(driver, "transcript")

        # The run ends when a person stops the last agents, once the team has submitted (each agent's
        # first refinement submits if it validates best in the team, so one or more by now).
        driver.get(base + "/")
        _wait("a PGR submission", lambda: re.match(r"[1-9]\d* ", _text(driver, "#team-submissions")) is not None, 600)
        for agent in ("elicit", "reweight"):
            _click(driver, f'tr[data-agent="{agent}"] button[name="stop"]')
            driver.switch_to.alert.accept()
            _wait(f"{agent} to stop", lambda a=agent: _row(driver, a)["state"].startswith(STOPPED), 120)  # type: ignore[misc]  # mypy cannot type a lambda whose default binds the loop variable


def check_finished_run(base: str, run_dir: Path) -> None:
    from selenium.webdriver.common.by import By

    with sqlite3.connect(run_dir / "servers" / "pgr.sqlite") as pgr:
        submissions = pgr.execute("SELECT id, state, flags, error, results FROM submissions").fetchall()
    scored = {row[0] for row in submissions if row[1] == "done"}
    assert scored, f"the run scored no submission: {submissions}"
    with chromium() as driver:
        driver.get(base + "/pgr")
        marks = driver.find_elements(By.CSS_SELECTOR, "svg.pgr-chart circle.submission")
        assert {mark.get_attribute("data-submission") for mark in marks} == scored
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.pgr-chart")
        assert len(marks) == len(scored) * len(charts)  # one mark per submission on each task's chart
        screenshot(driver, "pgr")
        driver.get(base + "/leaderboard")
        rows = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard tr[data-submission]")
        assert {row.get_attribute("data-submission") for row in rows} == scored
        screenshot(driver, "leaderboard")
        rows[0].find_element(By.CSS_SELECTOR, "a[href^='/submissions/']").click()
        assert "decoy teacher" in driver.page_source
        screenshot(driver, "submission")
        driver.find_element(By.CSS_SELECTOR, "a[href^='/snapshots/']").click()
        assert "Files (" in driver.page_source and "Diff against its parent" in driver.page_source
        screenshot(driver, "snapshot")
        driver.get(base + "/integrity")
        assert "Refused tool calls" in driver.page_source
        steering = driver.find_element(By.ID, "actions").text
        for action in ("pause", "resume", "stop", "post"):
            assert f"ada {action}" in steering, f"{action} is not in the steering log"
        screenshot(driver, "integrity")
        driver.get(base + "/")
        screenshot(driver, "team-finished")


PUBLIC = "wordnet-living"


async def test_the_console_watches_and_steers_a_live_scripted_run(tmp_path: Path) -> None:
    assert have_chromium(), (
        "the browser tests need Debian's chromium and chromium-driver (./scripts/setup.sh installs them as root)"
    )
    lines: list[str] = []
    request = RunRequest(
        manifest="nine",
        agents=3,
        runs_root=tmp_path / "runs",
        overrides={
            "budget.deadline": "10m",  # the test stops the team itself
            "budget.finish": "5m",
            "budget.agent.turns": 100_000,
            "budget.team.pgr_submissions": 1,  # one official score to wait for, not three in a row
            # one public task beside the secret ones: the score's runs are half as many
            "servers.env": {
                **TEST_SETTINGS,
                "AAR_PGR_TASKS_DIR": str(shipped_tasks(tmp_path / "tasks", "wordnet-living")),
            },
        },
        environ={},
        announce=lines.append,
        console=ConsoleOptions(port=0, operators=["ada"]),
    )
    outcome: list[RunResult] = []

    async def run() -> None:
        outcome.append(await run_team(request))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        with anyio.fail_after(300):
            while not any(line.startswith("console: ") for line in lines):
                await anyio.sleep(0.1)
        base = next(line for line in lines if line.startswith("console: ")).split()[1].rstrip("/")
        assert request.run_dir is not None
        await anyio.to_thread.run_sync(drive_live_console, base, request.run_dir.path)
    [result] = outcome
    stops = {row["agent"]: row["stop_reason"] for row in result.summary["agents"]}
    assert set(stops.values()) == {"stopped by ada"}, stops
    steering = [e for e in events(result.run_dir, "elicit") if e["type"] == "steering"]
    assert [e["action"] for e in steering] == ["paused", "resumed"] and steering[0]["by"] == "ada"

    async with serving(RunView(result.run_dir)) as finished:
        await anyio.to_thread.run_sync(check_finished_run, finished, result.run_dir.path)
