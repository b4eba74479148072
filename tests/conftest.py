from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HttpServer, running_http_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def http_server(data_dir: Path) -> Iterator[HttpServer]:
    with running_http_server(data_dir) as server:
        yield server
