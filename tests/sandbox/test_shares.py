"""No agent can take more than its share: of the CPU while others want it, of the disk (job logs count
toward its quota and old jobs go), of listings (they come in pages) and of exec output (start and end
kept within a bound)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from servers.pgr import isolated_runs
from servers.pgr.cpu_ageing import CpuAgeing
from servers.pgr.isolated_runs import RunRequest, run_in
from servers.sandbox import Sandbox, SandboxConfig
from servers.sandbox.cgroups import CPU_WEIGHT, CgroupRoot
from servers.sandbox.errors import NotFoundError, QuotaError, ToolInputError
from servers.sandbox.limits import Limit
from servers.sandbox.models import JobState
from tests.sandbox.support import with_limits

pytestmark = pytest.mark.anyio


async def test_job_logs_count_toward_the_disk_quota_and_deleting_the_job_frees_it(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, workspace_mib=2, job_log_bytes=8 * 1024 * 1024))
    try:
        flood = await service.start_job("alice", "flood", "head -c 3M /dev/zero | tr '\\0' x")
        info = await service.wait_job("alice", flood, timeout=30)
        assert info.state is JobState.FAILED and info.limit_hit == Limit.WORKSPACE_SIZE.value, info
        assert "disk quota 2 MiB" in (info.error or "") and "job logs" in (info.error or "")
        with pytest.raises(QuotaError, match=r"disk quota of 2 MiB is used up.*delete_job.*last 50 finished jobs"):
            await service.start_job("alice", "next", "true")
        with pytest.raises(QuotaError, match="disk quota of 2 MiB"):
            await service.write_file("alice", "notes.txt", "x")
        assert await service.start_job("bob", "other", "true")  # a quota is per agent
        running = await service.start_job("bob", "long", "sleep 30")
        with pytest.raises(ToolInputError, match="cancel_job it first"):
            await service.delete_job("bob", running)
        await service.delete_job("alice", flood)
        assert not Path(info.log_path).exists()
        with pytest.raises(NotFoundError):
            await service.job_status("alice", flood)
        again = await service.start_job("alice", "next", "echo fits")
        assert (await service.wait_job("alice", again, timeout=30)).state is JobState.SUCCEEDED
    finally:
        await service.close()


async def test_old_finished_jobs_are_forgotten_with_their_logs(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, job_history_per_agent=2))
    try:
        jobs = []
        for n in range(3):
            jobs.append(await service.start_job("alice", f"j{n}", f"echo {n}"))
            await service.wait_job("alice", jobs[-1], timeout=30)
        logs = [Path((await service.job_status("alice", job)).log_path) for job in jobs]
        await service.start_job("alice", "j3", "echo 3")
        kept = [job.id for job in await service.list_jobs("alice")]
        assert kept == jobs[1:] + kept[-1:] and len(kept) == 3  # two finished ones, and the new one
        assert not logs[0].exists() and logs[1].exists()
        with pytest.raises(NotFoundError, match="kept for your last 2"):
            await service.job_logs("alice", jobs[0])
    finally:
        await service.close()
    aged = await Sandbox.open(with_limits(config, job_history_days=0))
    try:
        assert await aged.list_jobs("alice") == []  # every finished job is older than zero days
        assert not any(log.exists() for log in logs)
    finally:
        await aged.close()


async def test_list_files_comes_in_pages(config: SandboxConfig) -> None:
    service = await Sandbox.open(with_limits(config, list_max_entries=10))
    try:
        await service.exec("alice", "mkdir -p d/e && for i in $(seq 11 34); do : > d/f$i; done; : > d/e/inner")
        pages: list[list[str]] = []
        offset: int | None = 0
        while offset is not None:
            page = await service.list_files("alice", "d", recursive=True, offset=offset, limit=50)
            assert len(page.entries) <= 10  # capped by list_max_entries
            pages.append([entry.path for entry in page.entries])
            offset = page.next_offset
        listed = [path for page in pages for path in page]
        assert len(pages) == 3 and len(listed) == len(set(listed)) == 26
        assert {"d/e", "d/e/inner", "d/f11", "d/f34"} <= set(listed)
        small = await service.list_files("alice", "d", offset=24, limit=5)
        assert [entry.path for entry in small.entries] == ["d/f34"] and small.next_offset is None
    finally:
        await service.close()


async def test_exec_output_keeps_its_start_and_end_and_says_how_to_get_the_rest(sandbox: Sandbox) -> None:
    result = await sandbox.exec("alice", "seq 1 200000; echo tail-of-stderr >&2")
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stdout.startswith("1\n2\n3\n") and result.stdout.endswith("199999\n200000\n")
    assert len(result.stdout) < sandbox.limits.output_bytes + 400
    total = len("".join(f"{n}\n" for n in range(1, 200001)))
    assert f"of the {total} bytes of stdout cut from the middle" in result.stdout
    assert "start_job" in result.stdout and "job_logs, offset and limit" in result.stdout
    assert result.stderr == "tail-of-stderr\n"


async def test_an_exec_that_times_out_suggests_start_job(sandbox: Sandbox) -> None:
    result = await sandbox.exec("alice", "sleep 5", timeout=0.5)
    assert result.limit_hit is Limit.TIMEOUT
    assert result.error is not None and "wall-clock limit 0.5 s" in result.error and "start_job" in result.error


def spin(seconds: float) -> str:
    """Burns CPU for `seconds` of wall clock, then prints the CPU seconds it got, in one write: unbuffered
    print() writes the number and the newline apart, and two processes' lines could run together ("0.840.88")."""
    return (
        f"python -c 'import os, time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
        't = os.times(); os.write(1, b"%f\\n" % (t.user + t.system))\''
    )


SPIN = spin(3)


async def test_an_agent_with_many_busy_processes_gets_no_more_cpu_than_one_with_one(sandbox: Sandbox) -> None:
    if not sandbox.cpu_shares:
        pytest.skip("no usable cpu cgroup controller here (v2 cpu, or a v1 cpu hierarchy): agents have no CPU weight")
    # Four sessions, as four jobs would be: the kernel's per-session autogroups do not merge them.
    hog_command = " & ".join([f"setsid -w {SPIN}"] * 4) + " & wait"
    hog, fair = await asyncio.gather(sandbox.exec("hog", hog_command), sandbox.exec("fair", SPIN))
    hog_cpu = sum(float(line) for line in hog.stdout.split())
    fair_cpu = float(fair.stdout)
    # Shared per session, the one process gets a quarter of the four's CPU (about 0.25 measured). Shared per
    # agent, as much on the CPU it runs on, while the four also have the other CPU(s) to themselves: about
    # 0.6 measured on 2 cores under load 18, 1.0 where the service has idle CPUs.
    assert fair_cpu > 0.4 * hog_cpu, (fair_cpu, hog_cpu)


async def test_a_service_with_a_lower_cpu_weight_yields_to_its_sibling(config: SandboxConfig) -> None:
    """How the PGR server's scoring (AAR_PGR_CPU_WEIGHT, 25) yields to the agents' commands: two services,
    the second at a quarter of the first's weight, each with a busy process on every core."""
    agents = await Sandbox.open(config)
    scoring = await Sandbox.open(replace(config, data_dir=config.data_dir / "scoring", cpu_weight=25))
    try:
        if not (agents.cpu_shares and scoring.cpu_shares):
            pytest.skip("no usable cpu cgroup controller here: services have no CPU weight")
        busy = " & ".join([f"setsid -w {SPIN}"] * (os.cpu_count() or 1)) + " & wait"
        first, second = await asyncio.gather(agents.exec("alice", busy), scoring.exec("root", busy))
        first_cpu, second_cpu = (sum(float(line) for line in r.stdout.split()) for r in (first, second))
        # 4:1 by weight (0.8 against 0.2 of the machine); other work on the machine only blurs it
        assert first_cpu > 2 * second_cpu, (first_cpu, second_cpu)
    finally:
        await scoring.close()
        await agents.close()


def test_a_submission_keeps_the_full_cpu_weight_while_young_then_yields_with_the_square_of_its_age() -> None:
    ageing = CpuAgeing(started_at=1000.0, full_for_s=60.0)
    assert ageing.weight(1000.0) == ageing.weight(1060.0) == CPU_WEIGHT
    assert ageing.weight(1120.0) == CPU_WEIGHT // 4 and ageing.weight(1180.0) == round(CPU_WEIGHT / 9)
    assert ageing.weight(1000.0 + 600) == 1 == ageing.weight(10**9)  # never 0: cgroups refuse it
    weights = [ageing.weight(1000.0 + age) for age in range(0, 700, 7)]
    assert weights == sorted(weights, reverse=True)


async def test_an_old_submissions_run_yields_the_cpu_to_a_young_ones_in_either_mode(
    config: SandboxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two PGR runs (servers.pgr.isolated_runs) that each keep every core busy for 6 s: one of a submission
    that becomes old a second after it starts, one of a fresh submission, each in its own sandbox sharing one
    cgroup, as the PGR server's frozen and fine-tuning sandboxes do (a method chooses its mode). At equal
    weights (before the PGR server aged its runs) they got the same CPU, so a method burning CPU until its
    time limit halved the speed of everyone else's scoring."""
    cgroups = CgroupRoot.detect(25)
    if cgroups is not None and cgroups.cpu_dir is None:
        cgroups.remove()
    if cgroups is None or cgroups.cpu_dir is None:
        pytest.skip("no usable cpu cgroup controller here: runs have no CPU weight")
    monkeypatch.setattr(isolated_runs, "TICK_S", 0.5)
    busy = "( " + " & ".join([f"setsid -w {spin(6)}"] * (os.cpu_count() or 1)) + " & wait ) > cpu.txt"

    def request(run_id: str, ageing: CpuAgeing) -> RunRequest:
        return RunRequest(run_id, "frozen", {}, busy, 60.0, "cpu.txt", ageing=ageing)

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(cgroups.remove)  # last, once both sandboxes have closed
        sandboxes = []
        for mode in ("frozen", "finetune"):
            sandboxes.append(await Sandbox.open(replace(config, data_dir=config.data_dir / mode), cgroups=cgroups))
            stack.push_async_callback(sandboxes[-1].close)
        frozen, finetune = sandboxes
        old, young = await asyncio.gather(
            run_in(frozen, request("old-run", CpuAgeing(started_at=time.time(), full_for_s=1.0))),
            run_in(finetune, request("young-run", CpuAgeing(started_at=time.time(), full_for_s=3600.0))),
        )
        with pytest.raises(ToolInputError, match="a CPU weight is a whole number from 1 to 10000"):
            await frozen.set_cpu_weight("alice", 0)
    old_cpu, young_cpu = (sum(float(line) for line in (run.output or "").split()) for run in (old, young))
    # about 1 against 1 for the first second, then the old one's weight falls with the square of its age
    # (25 at 2 s, 4 at 5 s); the young one's stays 100 throughout: about 9.7 against 2.3 CPU seconds on
    # 2 cores, measured (6.0 against 5.9 at equal weights)
    assert young_cpu > 3 * old_cpu, (young_cpu, old_cpu)
