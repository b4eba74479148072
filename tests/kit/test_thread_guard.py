"""A test run ends even when a test or a fixture leaves a thread running (tests/thread_guard.py): before
the guard, one unclosed aiosqlite connection kept pytest alive after the last test, until CI's limit."""

from __future__ import annotations

import pytest

from servers.sandbox.config import PROJECT_ROOT

pytest_plugins = ["pytester"]

LEFT_BY_A_TEST = """
import threading

def test_opens_and_forgets():
    threading.Thread(target=threading.Event().wait, name="left-by-a-test").start()
"""

LEFT_BY_A_FIXTURE = """
import threading
import pytest

@pytest.fixture(scope="module")
def connection():
    threading.Thread(target=threading.Event().wait, name="left-by-a-fixture").start()

def test_uses_it(connection):
    pass
"""


@pytest.fixture
def guarded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))  # the inner run imports the plugin from this checkout
    return pytester


def test_a_test_that_leaves_a_thread_fails_naming_it_and_the_run_still_ends(guarded: pytest.Pytester) -> None:
    guarded.makepyfile(LEFT_BY_A_TEST)
    result = guarded.runpytest_subprocess("-p", "tests.thread_guard", timeout=120)  # it hung forever before
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the test left threads running*left-by-a-test*"])
    assert result.ret != 0


def test_a_fixture_that_leaves_a_thread_makes_the_run_end_failed_not_hang(guarded: pytest.Pytester) -> None:
    guarded.makepyfile(LEFT_BY_A_FIXTURE)
    result = guarded.runpytest_subprocess("-p", "tests.thread_guard", timeout=120)
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(["*threads still running at exit*left-by-a-fixture*"])
    assert result.ret == 1
