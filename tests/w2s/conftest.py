from __future__ import annotations

from pathlib import Path

import pytest

from servers.w2s.tasks import Task, load_task


@pytest.fixture(scope="session")
def w2s_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so the default task's strong features are embedded once."""
    return tmp_path_factory.mktemp("w2s-cache")


@pytest.fixture(scope="session")
def living() -> Task:
    return load_task("wordnet-living")
