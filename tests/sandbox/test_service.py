"""Starting the service: refusing without isolation, the loud unsafe mode, GPU settings without GPUs, the view."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from servers.kit.settings import Settings
from servers.sandbox import IsolationUnavailableError, Sandbox, SandboxConfig
from servers.sandbox.gpu import GpuPool
from servers.sandbox.readonly_view import view_args
from servers.sandbox.server import sandbox_config
from tests.sandbox.support import TEST_LIMITS

pytestmark = pytest.mark.anyio


async def test_refuses_to_start_without_bubblewrap(config: SandboxConfig) -> None:
    with pytest.raises(IsolationUnavailableError, match="apt-get install bubblewrap"):
        await Sandbox.open(replace(config, bwrap="/nonexistent/bwrap"))


async def test_refuses_when_bubblewrap_cannot_build_a_sandbox(config: SandboxConfig, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(IsolationUnavailableError, match=r"No permissions to create new namespace.*user namespaces"):
        await Sandbox.open(replace(config, bwrap=str(fake)))


async def test_refuses_a_view_that_exposes_private_data(config: SandboxConfig) -> None:
    with pytest.raises(IsolationUnavailableError, match="contains private"):
        await Sandbox.open(
            replace(config, extra_ro_paths=(str(config.project_root / "servers"), str(config.data_dir.parent)))
        )


async def test_unsafe_mode_runs_and_warns_on_every_command(
    config: SandboxConfig, caplog: pytest.LogCaptureFixture
) -> None:
    service = await Sandbox.open(replace(config, bwrap="/nonexistent/bwrap"), unsafe_no_isolation=True)
    try:
        assert not service.isolated
        with caplog.at_level(logging.WARNING):
            first = await service.exec("alice", "echo one")
            second = await service.exec("alice", "echo two")
    finally:
        await service.close()
    assert (first.stdout, second.stdout) == ("one\n", "two\n")
    assert sum("WITHOUT isolation" in record.message for record in caplog.records) == 2


async def test_gpu_settings_are_harmless_without_gpus(config: SandboxConfig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        service = await Sandbox.open(replace(config, gpu_devices=("/dev/nvidia0", "/dev/nvidia1")))
    try:
        result = await service.exec("alice", 'echo "[$CUDA_VISIBLE_DEVICES]"; ls /dev')
    finally:
        await service.close()
    assert result.exit_code == 0 and result.stdout.startswith("[]\n") and "nvidia" not in result.stdout
    assert any("/dev/nvidia0 does not exist" in record.message for record in caplog.records)


def test_gpus_are_assigned_round_robin(tmp_path: Path) -> None:
    nodes = [tmp_path / name for name in ("nvidia0", "nvidia1", "nvidia3", "nvidiactl")]
    for node in nodes:
        node.touch()
    pool = GpuPool([str(node) for node in nodes[:3]])
    assert [pool.assign() for _ in range(7)] == ["0", "1", "3", "0", "1", "3", "0"]
    assert pool.bind_args()[:3] == ["--dev-bind", str(nodes[0]), str(nodes[0])]
    assert GpuPool([]).assign() is None and GpuPool([]).bind_args() == []


def test_view_leaves_hidden_paths_out_rather_than_masking_them(tmp_path: Path) -> None:
    share = tmp_path / "share"
    for name in ("zoneinfo", "wordnet", "fonts"):
        (share / name).mkdir(parents=True)
    (share / "link").symlink_to("fonts")
    args = view_args([str(share)], [str(share / "wordnet")])
    assert args == [
        "--dir",
        str(share),
        "--ro-bind",
        str(share / "fonts"),
        str(share / "fonts"),
        "--symlink",
        "fonts",
        str(share / "link"),
        "--ro-bind",
        str(share / "zoneinfo"),
        str(share / "zoneinfo"),
    ]
    assert view_args([str(share / "wordnet")], [str(share / "wordnet")]) == []


async def test_one_service_per_data_directory(sandbox: Sandbox, config: SandboxConfig) -> None:
    """A second service would mark the first one's running jobs lost, so it is refused."""
    with pytest.raises(RuntimeError, match="already uses"):
        await Sandbox.open(config)
    assert oct(config.root.stat().st_mode & 0o777) == "0o700"  # other host users cannot reach the workspaces


async def test_staged_model_folders_are_readable_and_read_only_inside(tmp_path: Path, project: Path) -> None:
    models = tmp_path / "models" / "qwen3-4b-base"
    models.mkdir(parents=True)
    (models / "config.json").write_text('{"model_type": "qwen3"}')
    settings = Settings(data_dir=tmp_path / "data", sandbox_model_dirs=[tmp_path / "models"])
    config = replace(sandbox_config(settings), project_root=project, limits=TEST_LIMITS)
    service = await Sandbox.open(config)
    try:
        result = await service.exec("alice", f"cat {models}/config.json && touch {models}/x")
    finally:
        await service.close()
    assert '"qwen3"' in result.stdout and "Read-only file system" in result.stderr
    assert not (models / "x").exists()
