from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HttpServer, running_http_server


@pytest.fixture(scope="module")
def server_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One `aar serve all --http` for a test module's runs, each agent with its own token."""
    data_dir: Path = tmp_path_factory.mktemp("servers") / "data"
    with running_http_server(data_dir) as server:
        yield server
