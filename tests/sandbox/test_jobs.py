"""Background jobs: logs, cancellation, fair scheduling under caps, and records that survive the service."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from servers.sandbox import Sandbox, SandboxConfig
from servers.sandbox.errors import CapacityError, NotFoundError
from servers.sandbox.models import JobState
from tests.sandbox.support import processes_with, wait_until_gone, with_limits

pytestmark = pytest.mark.anyio

GATED = "while [ ! -e gate ]; do sleep 0.05; done; echo passed"
"""A job that runs until the test writes `gate` into the agent's workspace (bounded by the job timeout)."""


async def test_job_lifecycle_and_logs(sandbox: Sandbox) -> None:
    job = await sandbox.start_job(
        "alice", "count", "for i in $(seq 1 2000); do echo line $i; done; echo oops >&2; exit 3"
    )
    info = await sandbox.wait_job("alice", job, timeout=30)
    assert info.state is JobState.FAILED and info.exit_code == 3 and info.error is None
    assert info.started_at and info.finished_at and info.finished_at >= info.started_at
    tail = await sandbox.job_logs("alice", job)
    assert tail.complete and tail.text.endswith("line 2000\noops\n") and tail.next_offset == tail.size
    head = await sandbox.job_logs("alice", job, offset=0, limit=14)
    assert head.text == "line 1\nline 2\n" and head.next_offset == 14
    follow = await sandbox.job_logs("alice", job, offset=head.next_offset, limit=7)
    assert follow.text == "line 3\n"
    assert [j.id for j in await sandbox.list_jobs("alice")] == [job]
    assert await sandbox.list_jobs("bob") == []
    with pytest.raises(NotFoundError):
        await sandbox.job_status("bob", job)  # another agent's job is invisible
    with pytest.raises(NotFoundError):
        await sandbox.cancel_job("bob", job)
    ok = await sandbox.start_job("alice", "ok", "echo fine > out.txt")
    assert (await sandbox.wait_job("alice", ok, timeout=30)).state is JobState.SUCCEEDED
    assert (await sandbox.read_file("alice", "out.txt")).text == "fine\n"


async def test_job_limits_are_named(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, job_timeout_s=1.0))
    try:
        job = await service.start_job("alice", "slow", "sleep 30")
        info = await service.wait_job("alice", job, timeout=20)
    finally:
        await service.close()
    assert info.state is JobState.FAILED and info.limit_hit == "timeout"
    assert info.error == "killed: wall-clock limit 1 s exceeded"


async def test_cpu_limit(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, exec_cpu_s=1))
    try:
        result = await service.exec("alice", "python -c 'while True: pass'", timeout=20)
    finally:
        await service.close()
    assert result.limit_hit is not None and result.limit_hit.value == "cpu", result
    assert result.error == "killed: CPU time limit 1 s per process exceeded"


async def test_job_survives_its_caller(sandbox: Sandbox) -> None:
    async def caller() -> str:
        job_id = await sandbox.start_job("alice", "detached", GATED)
        await asyncio.Event().wait()  # the request hangs until its client goes away
        return job_id

    request = asyncio.create_task(caller())
    for _ in range(100):
        if jobs := await sandbox.list_jobs("alice"):
            break
        await asyncio.sleep(0.02)
    request.cancel()
    await sandbox.write_file("alice", "gate", "")
    info = await sandbox.wait_job("alice", jobs[0].id, timeout=30)
    assert info.state is JobState.SUCCEEDED
    assert (await sandbox.job_logs("alice", info.id)).text == "passed\n"


async def test_fair_scheduling_under_caps(config: SandboxConfig) -> None:
    """One running job per agent, two in all: alice's backlog does not starve bob and carol."""
    service = await Sandbox.open(
        with_limits(config, max_running_jobs_per_agent=1, max_running_jobs_total=2, max_queued_jobs_per_agent=3)
    )
    try:
        alice = [await service.start_job("alice", f"a{n}", GATED) for n in range(4)]
        with pytest.raises(CapacityError, match="3 jobs queued"):
            await service.start_job("alice", "a4", GATED)
        bob = await service.start_job("bob", "b0", GATED)
        carol = await service.start_job("carol", "c0", GATED)
        states = {job.id: job.state for job in await service.list_jobs("alice")}
        assert [states[job] for job in alice] == [JobState.RUNNING] + [JobState.QUEUED] * 3
        assert (await service.job_status("bob", bob)).state is JobState.RUNNING
        assert (await service.job_status("carol", carol)).state is JobState.QUEUED
        await service.cancel_job("alice", alice[3])  # cancelling a queued job never starts it
        await service.write_file("alice", "gate", "")  # alice's running job ends: carol is next, not alice
        await service.wait_job("alice", alice[0], timeout=30)
        assert (await service.job_status("carol", carol)).state is JobState.RUNNING
        assert (await service.job_status("alice", alice[1])).state is JobState.QUEUED
        await service.write_file("bob", "gate", "")
        await service.write_file("carol", "gate", "")
        for job in alice[1:3]:
            assert (await service.wait_job("alice", job, timeout=30)).state is JobState.SUCCEEDED
        assert (await service.job_status("alice", alice[3])).state is JobState.CANCELLED
    finally:
        await service.close()


async def test_exec_concurrency_cap(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, max_execs_per_agent=1))
    try:
        first = asyncio.create_task(service.exec("alice", GATED))
        for _ in range(200):
            if service._execs["alice"]:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(CapacityError, match="limit 1"):
            await service.exec("alice", "true")
        assert (await service.exec("bob", "echo bob")).stdout == "bob\n"
        await service.write_file("alice", "gate", "")
        assert (await first).stdout == "passed\n"
    finally:
        await service.close()


async def test_exec_whose_caller_goes_away_is_killed(sandbox: Sandbox) -> None:
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    request = asyncio.create_task(sandbox.exec("alice", f"sleep 7{token}"))
    for _ in range(200):
        if processes_with(token):
            break
        await asyncio.sleep(0.02)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert await wait_until_gone(token) == []


SERVICE_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from servers.sandbox import Sandbox, SandboxConfig

async def main():
    service = await Sandbox.open(SandboxConfig(data_dir=Path(sys.argv[1])))
    done = await service.start_job("alice", "quick", "echo finished-before-crash")
    await service.wait_job("alice", done, timeout=60)
    running = await service.start_job("alice", "long", "echo up; sleep " + sys.argv[2])
    while "up" not in (await service.job_logs("alice", running)).text:
        await asyncio.sleep(0.05)
    print(json.dumps([done, running]), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_records_survive_a_crash_and_running_jobs_are_lost(tmp_path: Path) -> None:
    """kill -9 the service: its job dies with it (--die-with-parent), the next service marks it lost."""
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    data_dir = tmp_path / "data"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVICE_SCRIPT, str(data_dir), f"9{token}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 60)  # type: ignore[union-attr]
        done, running = json.loads(line)
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    assert await wait_until_gone(token) == []
    service = await Sandbox.open(SandboxConfig(data_dir=data_dir))
    try:
        jobs = {job.id: job for job in await service.list_jobs("alice")}
        assert jobs[done].state is JobState.SUCCEEDED
        assert (await service.job_logs("alice", done)).text == "finished-before-crash\n"
        assert jobs[running].state is JobState.LOST and "stopped while the job was running" in (
            jobs[running].error or ""
        )
        assert (await service.job_logs("alice", running)).text == "up\n"
    finally:
        await service.close()


async def test_close_marks_running_jobs_lost_and_queued_jobs_resume(config: SandboxConfig) -> None:
    first = await Sandbox.open(with_limits(config, max_running_jobs_total=1))
    running = await first.start_job("alice", "long", "sleep 60")
    queued = await first.start_job("bob", "next", "echo resumed")
    await first.close()
    second = await Sandbox.open(config)
    try:
        assert (await second.job_status("alice", running)).state is JobState.LOST
        info = await second.wait_job("bob", queued, timeout=30)
        assert info.state is JobState.SUCCEEDED and (await second.job_logs("bob", queued)).text == "resumed\n"
    finally:
        await second.close()


def gated(name: str) -> str:
    """A job that runs until the test writes `gate-NAME` into the agent's workspace."""
    return f"while [ ! -e gate-{name} ]; do sleep 0.05; done; echo {name}"


async def test_a_freed_slot_goes_to_an_agent_running_nothing_before_another_agents_third_job(
    config: SandboxConfig,
) -> None:
    """Four agents fill every slot with two jobs each; a fifth agent that ran a job more recently than
    the first one still gets the next free slot, ahead of that agent's third job."""
    service = await Sandbox.open(with_limits(config, max_running_jobs_per_agent=2, max_running_jobs_total=8))
    try:
        first = [await service.start_job("ann", f"ann{n}", gated(f"ann{n}")) for n in range(2)]
        quick = await service.start_job("eve", "quick", "true")
        assert (await service.wait_job("eve", quick, timeout=30)).state is JobState.SUCCEEDED
        for agent in ("bob", "cat", "dan"):
            for n in range(2):
                await service.start_job(agent, f"{agent}{n}", gated(f"{agent}{n}"))
        third = await service.start_job("ann", "ann2", gated("ann2"))
        fifth = await service.start_job("eve", "eve0", gated("eve0"))
        assert (await service.job_status("eve", fifth)).state is JobState.QUEUED
        await service.write_file("ann", "gate-ann0", "")
        await service.wait_job("ann", first[0], timeout=30)
        assert (await service.job_status("eve", fifth)).state is JobState.RUNNING
        assert (await service.job_status("ann", third)).state is JobState.QUEUED
    finally:
        await service.close()
