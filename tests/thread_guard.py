"""A pytest plugin (`-p tests.thread_guard`, in pyproject's addopts): no test run that cannot end.

Python waits at exit for every non-daemon thread, so a thread left running (an aiosqlite connection
never closed, say) keeps pytest, and CI, from ever ending after the last test has passed. The
fixture fails the test that left one, naming it; the exit hook ends a run whose session fixtures
left one, failing, instead of hanging.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

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


EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """If a thread outside any one test (a session fixture's) is still running, say so and exit anyway:
    a test run that never ends is worse than one that fails, and CI would wait for it until its limit."""
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if left and EXIT_STATUS in config.stash:
        print(f"pytest: threads still running at exit, not waited for: {sorted(left)}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS] or 1)
