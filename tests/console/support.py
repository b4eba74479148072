"""What the console tests share: a run directory with real server files, the console on a real port, a browser."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from client.agent import AgentStatus
from client.console.app import create_console
from client.console.run import LiveTeam, RunView
from client.console.serve import ConsoleOptions, console_running
from client.record import AgentLog, RunDir
from client.steering import ActionLog, TeamControls
from servers.forum.store import ForumStore
from servers.pgr.models import TaskResult
from servers.pgr.store import PgrStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AAR_ARTIFACTS_DIR", PROJECT_ROOT / "artifacts")) / "console"
"""Screenshots of every page, kept by CI (the README names this folder)."""
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
)  # fmt: skip
AGENTS = ("alpha", "beta")
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def manifest(agents: tuple[str, ...] = AGENTS) -> dict[str, Any]:
    return {
        "name": "console-test",
        "agents": [{"name": name, "direction": f"{name}'s direction"} for name in agents],
        "budget": {"deadline": 600, "team": {"dollars": 10.0, "pgr_submissions": 2}},
    }


async def make_run(root: Path) -> RunDir:
    """A run directory as `aar run` leaves it: run.json, records, and forum and PGR files written by the stores."""
    run_dir = RunDir.create(root, "console-test", "name = 'console-test'\n")
    run_dir.write_info(
        {"run": run_dir.path.name, "created_at": "2026-11-27T08:00:00+00:00", "elapsed_s": 60.0, "manifest": manifest()}
    )
    for name in AGENTS:
        log = AgentLog(run_dir.agent_log_path(name))
        log.write("session", model="scripted", resumed=False)
        log.write("message", role="user", content=[{"type": "text", "text": f"kickoff for {name}"}])
        usage = {"input_tokens": 100, "output_tokens": 20}
        log.write("model_call", purpose="turn", usage=usage, dollars=0.01, model_s=0.1, stop_reason="tool_use")
        log.write("tool_call", id="t1", name="pgr__submit", input={"snapshot": "abc1234", "entry_point": "m.py:m"})
        log.write("tool_result", id="t1", name="pgr__submit", is_error=True, refused="budget spent", duration_s=0.0,
                  content="refused: budget spent")  # fmt: skip
        log.close()
    forum = await ForumStore.open(run_dir.servers_dir / "forum.sqlite")
    await forum.create_post(author="alpha", kind="finding", title="Confidence loss helps", body="The auxiliary "
                            "confidence term lifts validation PGR.", tags=["confidence-loss"])  # fmt: skip
    await forum.close()
    pgr = await PgrStore.open(run_dir.servers_dir / "pgr.sqlite")
    for agent, state, value in (("alpha", "done", 0.6), ("beta", "queued", None)):
        submission = await pgr.create_submission(agent=agent, snapshot=SNAPSHOT, entry_point="m.py:m",
                                                 code_sha256=agent, derived_from=[], same_code_as=None)  # fmt: skip
        if state == "done":
            results = [TaskResult(task="negation", secret=False, pgr_mean=value, pgr_se=0.05, seeds=2,
                                  shuffled_pgr=-0.4, decoy_pgr=0.5)]  # fmt: skip
            await pgr.update(submission.id, state="done", pgr_mean=value, results=results, finished_at=time.time())
    await pgr.record_evaluation(agent="beta", kind="refused", task="negation", split="validation",
                                predictions_sha256="f" * 64, accuracy=None, pgr=None)  # fmt: skip
    await pgr.close()
    return run_dir


@contextlib.asynccontextmanager
async def serving(view: RunView, **options: Any) -> AsyncIterator[str]:
    """The console of `view` on a free port; yields its base URL."""
    settings = ConsoleOptions(port=0, operators=["ada"], **options)
    lines: list[str] = []
    async with console_running(lambda access: create_console(view, access), settings, lines.append) as port:
        yield f"http://127.0.0.1:{port}"


def live_view(run_dir: RunDir) -> RunView:
    controls = TeamControls(ActionLog(run_dir.steering_path), list(AGENTS))
    return RunView(run_dir, LiveTeam({name: AgentStatus() for name in AGENTS}, controls))


def request(
    url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """GET (or POST a form) without following redirects: status, body, headers."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def form_secret(page: str) -> str:
    marker = 'name="form_secret" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def have_chromium() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven through chromedriver (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def events(run_dir: RunDir, agent: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run_dir.agent_log_path(agent).read_text().splitlines()]
