"""Official runs on a Ray cluster: one Ray task per run, on nodes that advertise a `pgr_eval` resource.

The request (code, a label-free bundle, a command) travels to the node; the run happens there in a
sandbox of its own (servers.cluster.node_sandbox) and only the outcome comes back: labels and scoring
never leave the PGR server. A node that dies mid-run makes Ray run the task again elsewhere, under the
same run id and in a fresh folder; the server awaits one result per run, so a run is scored once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

from servers.cluster.connection import missing_capacity
from servers.cluster.node_sandbox import NodeSandboxSpec, open_node_sandbox
from servers.pgr.isolated_runs import RunOutcome, RunRequest, run_in
from servers.sandbox.limits import Limit
from servers.sandbox.models import JobState
from servers.w2s.api import StrongMode

__all__ = ["PGR_RESOURCE", "RayRuns"]

logger = logging.getLogger(__name__)

PGR_RESOURCE = "pgr_eval"
SCHEDULING_GRACE_S = 600.0
"""How long past its own time limit a run may wait for a node before it counts as timed out."""


def _run_on_node(spec: NodeSandboxSpec, node_dir: str, request: RunRequest) -> RunOutcome:
    """The Ray task: a sandbox in a folder of this attempt's own, the run, then the folder removed."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    folder = Path(node_dir) / node / "pgr-runs" / f"{request.run_id}-{uuid.uuid4().hex[:8]}"

    async def run() -> RunOutcome:
        sandbox = await open_node_sandbox(spec, folder)
        try:
            return await run_in(sandbox, request)
        finally:
            await sandbox.close()

    try:
        outcome = asyncio.run(run())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dataclasses.replace(outcome, node=node)


class RayRuns:
    """Sends each run to the cluster with its resource requests; cancelling a run cancels its task."""

    def __init__(self, specs: dict[StrongMode, NodeSandboxSpec], node_dir: Path, *, cpus: float, retries: int) -> None:
        import ray

        self._specs = specs
        self._node_dir = str(node_dir)
        self._cpus = cpus
        self._retries = retries
        self._remote = ray.remote(_run_on_node)

    async def execute(self, request: RunRequest) -> RunOutcome:
        import ray

        spec = self._specs[request.mode]
        reason = await asyncio.to_thread(missing_capacity, PGR_RESOURCE, request.gpus, "AAR_RAY_RUN_GPUS")
        if reason is not None:  # Ray would leave it pending until the scheduling grace ran out
            logger.error("run %s refused: %s", request.run_id, reason)
            return RunOutcome(
                state=JobState.FAILED, limit_hit=None, output=None, log_tail=reason, node="none", unschedulable=True
            )
        options: dict[str, Any] = {
            "name": f"pgr-run-{request.run_id}",
            "resources": {PGR_RESOURCE: 1},
            "num_cpus": self._cpus,
            "num_gpus": request.gpus,
            "memory": spec.config.limits.memory_mib * 1024 * 1024,
            "max_retries": self._retries,
            "retry_exceptions": False,
        }
        ref = self._remote.options(**options).remote(spec, self._node_dir, request)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), request.timeout_s + SCHEDULING_GRACE_S)
        except TimeoutError:
            ray.cancel(ref, force=True)
            return RunOutcome(
                state=JobState.FAILED, limit_hit=Limit.TIMEOUT, output=None,
                log_tail=f"no node with {options['resources']} and {request.gpus} GPUs ran it in time",
                node="none",
            )  # fmt: skip
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)
            raise
