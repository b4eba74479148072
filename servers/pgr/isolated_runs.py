"""One official run as a unit of work an executor can place anywhere: files in, one output file back.

The submission worker (servers.pgr.submissions) decides what runs and scores what comes back; an
executor only runs a request in a fresh workspace of an isolated sandbox: on this machine
(`LocalRuns`) or on a Ray node (servers.pgr.ray_runs). A request holds code, a label-free bundle
and a command; its id is the run's random id, so a retried run is the same run. While it runs, its
CPU weight follows its submission's age (servers.pgr.cpu_ageing), wherever it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from servers.kit.errors import ToolInputError
from servers.pgr.cpu_ageing import TICK_S, CpuAgeing
from servers.sandbox.models import JobState
from servers.sandbox.store import Sandbox
from servers.w2s.api import StrongMode

__all__ = ["LocalRuns", "RunExecutor", "RunOutcome", "RunRequest", "run_in"]

LOG_TAIL_BYTES = 4000


@dataclass(frozen=True)
class RunRequest:
    """What an isolated run needs; `gpus` is a scheduling request (only a cluster executor uses it);
    `ageing` the CPU weight it runs at over time (None: every agent's, throughout)."""

    run_id: str
    mode: StrongMode
    files: dict[str, bytes]
    command: str
    timeout_s: float
    output: str
    gpus: float = 0.0
    ageing: CpuAgeing | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, the text of its output file (None if it left none) and its log's tail (operator only)."""

    state: JobState
    limit_hit: str | None
    output: str | None
    log_tail: str
    node: str = "local"
    unschedulable: bool = False
    """No node of the executor can hold the run's resource requests: the lab's configuration, not the method."""


class RunExecutor(Protocol):
    async def execute(self, request: RunRequest) -> RunOutcome: ...


async def run_in(sandbox: Sandbox, request: RunRequest) -> RunOutcome:
    """Run a request as one job in its own workspace of `sandbox`, then remove the workspace."""
    workspace = request.run_id
    tick = TICK_S if request.ageing else None
    try:
        await sandbox.import_files(workspace, request.files)
        weight = await _follow_age(sandbox, workspace, request.ageing, None)
        job_id = await sandbox.start_job(workspace, "run", request.command, max(1.0, request.timeout_s))
        info = await sandbox.wait_job(workspace, job_id, tick)
        while not info.finished:
            weight = await _follow_age(sandbox, workspace, request.ageing, weight)
            info = await sandbox.wait_job(workspace, job_id, tick)
        log_tail = ""
        if info.state is not JobState.SUCCEEDED:
            log_tail = (await sandbox.job_logs(workspace, job_id, None, LOG_TAIL_BYTES)).text
        try:
            output: str | None = (await sandbox.read_file(workspace, request.output)).text
        except ToolInputError:
            output = None
        return RunOutcome(state=info.state, limit_hit=info.limit_hit, output=output, log_tail=log_tail)
    finally:
        await sandbox.remove_workspace(workspace)


async def _follow_age(sandbox: Sandbox, workspace: str, ageing: CpuAgeing | None, weight: int | None) -> int | None:
    """Bring the run's CPU weight up to date with its submission's age; the weight it has now."""
    if ageing is None:
        return None
    latest = ageing.weight(time.time())
    if latest != weight:
        await sandbox.set_cpu_weight(workspace, latest)
    return latest


class LocalRuns:
    """Runs on this machine, in the PGR server's own sandbox for the run's mode."""

    def __init__(self, sandboxes: dict[StrongMode, Sandbox]) -> None:
        self._sandboxes = sandboxes

    async def execute(self, request: RunRequest) -> RunOutcome:
        return await run_in(self._sandboxes[request.mode], request)
