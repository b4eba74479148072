from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.pgr.secret_task import derive_secret_tasks
from tests.support import SECRET_DRAW, SECRET_TASKS, HttpServer, running_http_server, shipped_tasks


@pytest.fixture(scope="session", autouse=True)
def secret_tasks() -> Path:
    """The tests' secret transfer tasks: a fixed choice, so their cached data serves every test."""
    derive_secret_tasks(SECRET_TASKS, rng=random.Random(SECRET_DRAW))
    return SECRET_TASKS


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
