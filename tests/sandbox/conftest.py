"""Fixtures: a sandbox over a temporary data directory, beside a fake project tree that holds task labels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servers.sandbox import Sandbox, SandboxConfig
from tests.sandbox.support import HIDDEN_LABELS, TEST_LIMITS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fake project tree: the method API beside a task pack whose labels must stay hidden."""
    root = tmp_path / "project"
    (root / "servers" / "w2s" / "methods").mkdir(parents=True)
    (root / "servers" / "__init__.py").write_text("")
    (root / "servers" / "w2s" / "__init__.py").write_text("import servers.pgr  # the real package may import more\n")
    (root / "servers" / "w2s" / "api.py").write_text("VERSION = 'api-ok'\n")
    (root / "servers" / "w2s" / "methods" / "mine.py").write_text(
        "from servers.w2s.api import VERSION\nNAME = 'method-ok'\n"
    )
    tasks = root / "servers" / "pgr" / "tasks" / "demo"
    tasks.mkdir(parents=True)
    (root / "servers" / "pgr" / "__init__.py").write_text("")
    (tasks / "labels.jsonl").write_text(
        "".join(f'{{"text": "t{n}", "label": "{label}"}}\n' for n, label in enumerate(HIDDEN_LABELS))
    )
    return root


@pytest.fixture
def config(tmp_path: Path, project: Path) -> SandboxConfig:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "pgr").mkdir()
    (data_dir / "pgr" / "labels.csv").write_text(
        "id,label\n" + "".join(f"{n},{label}\n" for n, label in enumerate(HIDDEN_LABELS))
    )
    return SandboxConfig(
        data_dir=data_dir,
        limits=TEST_LIMITS,
        project_root=project,
        api_sources=("servers/w2s/api.py", "servers/w2s/methods", "servers/w2s/absent.py"),
    )


@pytest.fixture
async def sandbox(config: SandboxConfig) -> AsyncIterator[Sandbox]:
    service = await Sandbox.open(config)
    try:
        yield service
    finally:
        await service.close()
