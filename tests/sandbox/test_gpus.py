"""A job's GPUs: `start_job`'s `gpus` gets that many of the sandbox's devices (none for 0, one by
default), more than the sandbox has is refused at once with the setting to change, and a job file
from before the column existed still opens."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.support import fingerprint, memory_client

pytestmark = pytest.mark.anyio

SHOW = 'echo "[$CUDA_VISIBLE_DEVICES]"'


@pytest.fixture
def devices(tmp_path: Path) -> list[str]:
    """Two stand-ins for /dev/nvidiaN: files bound into the sandbox as the real nodes would be."""
    nodes = [tmp_path / "dev" / f"nvidia{index}" for index in (0, 1)]
    for node in nodes:
        node.parent.mkdir(exist_ok=True)
        node.touch()
    return [str(node) for node in nodes]


async def _finished(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(60):
        while True:
            job: dict[str, Any] = (await client.call_tool("job_status", {"job_id": job_id})).structured_content
            if job["state"] not in ("queued", "running"):
                return job
            await anyio.sleep(0.1)


async def _visible_devices(client: Client, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    started = await client.call_tool("start_job", {"name": "gpus", "command": SHOW, **arguments})
    assert not started.is_error, started.content
    job = await _finished(client, started.structured_content["id"])
    log = (await client.call_tool("job_logs", {"job_id": job["id"]})).structured_content
    assert job["state"] == "succeeded" and log is not None, (job, log)
    return log["text"].strip(), job


async def test_a_job_gets_the_gpus_it_asks_for(data_dir: Path, devices: list[str]) -> None:
    async with memory_client("sandbox", data_dir, "alice", sandbox_gpu_devices=devices) as client:
        both, job = await _visible_devices(client, {"gpus": 2})
        assert both == "[0,1]" and job["gpus"] == 2
        none, job = await _visible_devices(client, {"gpus": 0})
        assert none == "[]" and job["gpus"] == 0
        default, job = await _visible_devices(client, {})
        assert default in ("[0]", "[1]") and job["gpus"] is None


async def test_more_gpus_than_the_sandbox_has_is_refused_at_once_and_nothing_is_queued(
    data_dir: Path, devices: list[str]
) -> None:
    async with memory_client("sandbox", data_dir, "alice", sandbox_gpu_devices=devices) as client:
        await client.call_tool("start_job", {"name": "first", "command": "true"})
        before = fingerprint("sandbox", data_dir), (await client.call_tool("list_jobs", {})).structured_content
        greedy = await client.call_tool("start_job", {"name": "big", "command": "python train.py", "gpus": 3})
        negative = await client.call_tool("start_job", {"name": "odd", "command": "true", "gpus": -1})
        after = fingerprint("sandbox", data_dir), (await client.call_tool("list_jobs", {})).structured_content
    assert greedy.is_error and negative.is_error
    text = greedy.content[0].text  # type: ignore[union-attr]
    assert "asks for 3 GPUs but this sandbox has 2" in text and "AAR_SANDBOX_GPU_DEVICES" in text
    assert "gpus" in negative.content[0].text  # type: ignore[union-attr]
    assert [job["name"] for job in after[1]["jobs"]] == ["first"]
    assert before[0] == after[0]


async def test_without_gpus_a_job_asking_for_one_is_refused(data_dir: Path) -> None:
    async with memory_client("sandbox", data_dir, "alice") as client:
        result = await client.call_tool("start_job", {"name": "train", "command": "true", "gpus": 1})
        unneeded, _ = await _visible_devices(client, {"gpus": 0})
    assert result.is_error and "this sandbox has 0" in result.content[0].text  # type: ignore[union-attr]
    assert unneeded == "[]"


async def test_a_job_file_from_before_gpus_opens_and_keeps_its_jobs(data_dir: Path) -> None:
    path = data_dir / "sandbox" / "jobs.sqlite"
    path.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, owner TEXT NOT NULL,"
            " name TEXT NOT NULL, command TEXT NOT NULL, timeout_s REAL NOT NULL, state TEXT NOT NULL, exit_code"
            " INTEGER, limit_hit TEXT, error TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL,"
            " log_path TEXT NOT NULL)"
        )
        connection.execute(
            "INSERT INTO jobs (id, owner, name, command, timeout_s, state, exit_code, created_at, started_at,"
            " finished_at, log_path) VALUES ('0123456789ab', 'alice', 'old', 'true', 60, 'succeeded', 0, ?, ?, ?,"
            " '/nonexistent.log')",
            (time.time() - 3, time.time() - 2, time.time() - 1),
        )
    async with memory_client("sandbox", data_dir, "alice") as client:
        jobs = (await client.call_tool("list_jobs", {})).structured_content
        _, job = await _visible_devices(client, {"gpus": 0})
    assert jobs is not None and [(j["name"], j["gpus"]) for j in jobs["jobs"]] == [("old", None)]
    assert job["gpus"] == 0
