from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.pgr.secret_task import derive_secret_tasks
from tests.support import SECRET_TASKS, HttpServer, running_http_server, shipped_tasks


@pytest.fixture(scope="session", autouse=True)
def secret_tasks() -> Path:
    """The tests' secret transfer tasks: a fixed choice, so their cached data serves every test."""
    derive_secret_tasks(SECRET_TASKS, rng=random.Random(0))
    return SECRET_TASKS


LEAK_GRACE_S = 5.0
"""How long a thread the test started may take to end after it (a connection closing, a server stopping)."""


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """Fail a test that leaves a non-daemon thread running (an aiosqlite connection it never closed, say):
    Python waits for such threads at exit, so one left behind keeps pytest, and CI, from ever ending."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        left = [t for t in threading.enumerate() if t not in before and not t.daemon and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"the test left threads running; close what it opened: {sorted(t.name for t in left)}"


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """If a thread outside any one test (a session fixture's) is still running, say so and exit anyway:
    a test run that never ends is worse than one that fails, and CI would wait for it until its limit."""
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if left and _exit_status:
        print(f"pytest: threads still running at exit, not waited for: {sorted(left)}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1] or 1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def one_public_task(tmp_path: Path) -> Path:
    """A task folder with the shipped negation pack alone: with the two secret tasks, a submission is 9
    runs instead of 15, for tests of the queue and the scorer that need a real submission, not six tasks."""
    return shipped_tasks(tmp_path / "tasks", "negation")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def http_server(data_dir: Path) -> Iterator[HttpServer]:
    with running_http_server(data_dir) as server:
        yield server
