from __future__ import annotations

import os
from pathlib import Path

import pytest

from servers.w2s.tasks import Task, load_task


@pytest.fixture(scope="session")
def w2s_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so the default task's strong features are embedded once.

    AAR_TEST_W2S_CACHE names a warm cache to reuse instead (entries are keyed by content hashes,
    so a stale entry cannot be returned); on a loaded machine embedding alone can pass the timeout.
    """
    warm = os.environ.get("AAR_TEST_W2S_CACHE")
    return Path(warm) if warm else tmp_path_factory.mktemp("w2s-cache")


@pytest.fixture(scope="session")
def living() -> Task:
    return load_task("wordnet-living")
