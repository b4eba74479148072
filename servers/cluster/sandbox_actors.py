"""The sandbox on a Ray cluster: one actor per agent, on a node with a `sandbox` resource, holding that
agent's workspace and running its commands under bubblewrap there.

`RaySandbox` has the public API of servers.sandbox.store.Sandbox, so the sandbox server's tools
call it unchanged; each call goes to the agent's actor. Actors are named and detached: they outlive a
server restart and are found again by name. A node that dies takes its actors' workspaces and running
jobs with it; the next call places a fresh actor on a live node (the agent restores its workspace
with load_snapshot) and the jobs that were on the dead node read as `lost`, with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from servers.cluster.connection import connect, missing_capacity
from servers.cluster.job_ledger import JobLedger
from servers.cluster.node_sandbox import NodeSandboxSpec, open_node_sandbox
from servers.kit.settings import Settings
from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import CapacityError, NotFoundError
from servers.sandbox.jobs import JobRecord
from servers.sandbox.limits import SandboxLimits
from servers.sandbox.models import CommandResult, FileList, JobLog, WrittenFile
from servers.sandbox.store import Sandbox
from servers.sandbox.workspace import FileChunk

__all__ = ["SANDBOX_RESOURCE", "NodeLostError", "RaySandbox", "open_cluster_sandbox"]

logger = logging.getLogger(__name__)

SANDBOX_RESOURCE = "sandbox"
PLACE_ATTEMPTS = 4
PLACE_TIMEOUT_S = 60.0
"""How long an agent's actor may take to answer where it runs (a new one starts a worker process)."""
LEDGER_FILE = "cluster-jobs.sqlite"
"""The head's record of which node each job went to (servers.cluster.job_ledger), in the sandbox's folder."""


class NodeLostError(CapacityError):
    """The node holding an agent's sandbox failed; the next call gets a fresh one elsewhere."""


class AgentSandbox:
    """The Ray actor: a local Sandbox over this node's folder for one agent (AAR_RAY_NODE_DIR/<node>/agents)."""

    def __init__(self, spec: NodeSandboxSpec, node_dir: str, agent: str) -> None:
        import ray

        self._node = ray.get_runtime_context().get_node_id()
        self._folder = Path(node_dir) / self._node / "agents" / agent
        self._spec = spec
        self._sandbox: Sandbox | None = None
        self._opening = asyncio.Lock()

    async def call(self, method: str, *args: Any) -> Any:
        async with self._opening:
            if self._sandbox is None:
                self._sandbox = await open_node_sandbox(self._spec, self._folder)
        return await getattr(self._sandbox, method)(*args)

    def node(self) -> str:
        return self._node


@dataclasses.dataclass
class _Placement:
    actor: Any
    node: str


class RaySandbox:
    """Sandbox's API, each call run by the calling agent's actor on a worker node."""

    def __init__(self, spec: NodeSandboxSpec, node_dir: Path, gpus: float, ledger: JobLedger) -> None:
        import ray

        self.config = spec.config
        self.limits: SandboxLimits = spec.config.limits
        self.isolated = not spec.unsafe_no_isolation
        self.cgroup_version: int | None = None
        self._spec = spec
        self._node_dir = str(node_dir)
        self._gpus = gpus
        self._actor_class = ray.remote(AgentSandbox)
        self._placements: dict[str, _Placement] = {}
        self._ledger = ledger
        self._placing = asyncio.Lock()

    @classmethod
    async def open(cls, spec: NodeSandboxSpec, node_dir: Path, *, gpus: float = 0.0) -> RaySandbox:
        limits = spec.config.limits
        keep = limits.job_history_per_agent + limits.max_queued_jobs_per_agent + limits.max_running_jobs_per_agent
        ledger = await JobLedger.open(spec.config.root / LEDGER_FILE, keep)
        return cls(spec, node_dir, gpus, ledger)

    async def close(self) -> None:
        """Close the ledger; the agents' actors (workspaces, running jobs) live on for the next server."""
        await self._ledger.close()

    # Files

    async def write_file(self, agent: str, path: str, content: str | bytes) -> WrittenFile:
        return await self._call(agent, "write_file", agent, path, content)  # type: ignore[no-any-return]

    async def read_file(self, agent: str, path: str, offset: int = 0, limit: int | None = None) -> FileChunk:
        return await self._call(agent, "read_file", agent, path, offset, limit)  # type: ignore[no-any-return]

    async def list_files(
        self, agent: str, path: str = ".", recursive: bool = False, offset: int = 0, limit: int | None = None
    ) -> FileList:
        return await self._call(agent, "list_files", agent, path, recursive, offset, limit)  # type: ignore[no-any-return]

    async def export_files(self, agent: str, paths: Sequence[str]) -> dict[str, bytes]:
        return await self._call(agent, "export_files", agent, list(paths))  # type: ignore[no-any-return]

    async def import_files(self, agent: str, files: Mapping[str, str | bytes]) -> list[str]:
        return await self._call(agent, "import_files", agent, dict(files))  # type: ignore[no-any-return]

    async def remove_workspace(self, agent: str) -> None:
        await self._call(agent, "remove_workspace", agent)

    # Commands and jobs

    async def exec(self, agent: str, command: str, timeout: float | None = None) -> CommandResult:
        return await self._call(agent, "exec", agent, command, timeout)  # type: ignore[no-any-return]

    async def start_job(
        self, agent: str, name: str, command: str, timeout: float | None = None, gpus: int | None = None
    ) -> str:
        """Queue a job on the agent's node; `gpus` may not exceed what the agent's actor holds (Ray's GPUs
        for it, which the node's sandbox shares out as a local one does its configured devices)."""
        if gpus is not None and gpus > self._gpus:
            raise CapacityError(
                f"this job asks for {gpus:g} GPUs but your sandbox holds {self._gpus:g} "
                "(setting AAR_RAY_SANDBOX_GPUS, the operator's per-agent GPUs); ask for at most that many"
            )
        job_id: str = await self._call(agent, "start_job", agent, name, command, timeout, gpus)
        await self._ledger.record(agent, job_id, name, command, gpus, self._placements[agent].node)
        return job_id

    async def job_status(self, agent: str, job_id: str) -> JobRecord:
        return await self._job_call(agent, "job_status", job_id)

    async def job_logs(self, agent: str, job_id: str, offset: int | None = None, limit: int = 64 * 1024) -> JobLog:
        return await self._call(agent, "job_logs", agent, job_id, offset, limit)  # type: ignore[no-any-return]

    async def list_jobs(self, agent: str) -> list[JobRecord]:
        placed = await self._call(agent, "list_jobs", agent)  # first: it finds a node that failed unseen
        return sorted([*await self._ledger.lost(agent), *placed], key=lambda info: info.created_at)

    async def cancel_job(self, agent: str, job_id: str) -> JobRecord:
        return await self._job_call(agent, "cancel_job", job_id)

    async def delete_job(self, agent: str, job_id: str) -> JobRecord:
        deleted = await self._job_call(agent, "delete_job", job_id)
        await self._ledger.forget(agent, job_id)
        return deleted

    async def wait_job(self, agent: str, job_id: str, timeout: float | None = None) -> JobRecord:
        return await self._job_call(agent, "wait_job", job_id, timeout)

    def node_of(self, agent: str) -> str:
        """The id of the node holding the agent's sandbox now (placed at its first call)."""
        return self._placements[agent].node

    # Placement

    async def _job_call(self, agent: str, method: str, job_id: str, *args: Any) -> JobRecord:
        """A call about one job; a job of a failed node reads as lost, with the reason (the agent's node,
        failed just now or replaced since, no longer knows it: only then is the ledger read)."""
        try:
            return await self._call(agent, method, agent, job_id, *args)  # type: ignore[no-any-return]
        except (NodeLostError, NotFoundError):
            lost = await self._ledger.lost_job(agent, job_id)
            if lost is None:
                raise
            return lost

    async def _call(self, agent: str, method: str, *args: Any) -> Any:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

        placement = await self._place(agent)
        try:
            return await placement.actor.call.remote(method, *args)
        except RayTaskError as error:  # the sandbox's own error (bad input, a limit), without Ray's wrapping
            raise error.cause from None
        except (ActorDiedError, ActorUnavailableError) as error:
            await self._mark_lost(agent, placement, error)
            ray.kill(placement.actor, no_restart=True)
            raise NodeLostError(
                f"the cluster node holding your sandbox ({placement.node[:12]}) failed: its workspace and running "
                "jobs are gone; call again to get a fresh workspace on another node, and restore it with load_snapshot"
            ) from None

    async def _place(self, agent: str) -> _Placement:
        """The agent's actor: the live one by name, or a new one on a node with room (never a silent wait).

        The actor found by name may be on a node that failed while this server was down, before Ray
        noticed: it is killed and replaced (its jobs then read as lost, from the ledger).
        """
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        async with self._placing:
            if agent in self._placements:
                return self._placements[agent]
            for attempt in range(1, PLACE_ATTEMPTS + 1):
                self._check_feasible()
                actor: Any = self._actor_class.options(
                    name=f"sandbox-{agent}",
                    get_if_exists=True,
                    lifetime="detached",
                    resources={SANDBOX_RESOURCE: 1},
                    num_cpus=0,
                    num_gpus=self._gpus,
                    scheduling_strategy="SPREAD",
                    max_concurrency=1000,
                ).remote(self._spec, self._node_dir, agent)
                try:
                    node = await asyncio.wait_for(actor.node.remote(), PLACE_TIMEOUT_S)
                    break
                except (ActorDiedError, ActorUnavailableError, TimeoutError) as error:
                    logger.warning("sandbox of %s unreachable (attempt %d): %r; replacing it", agent, attempt, error)
                    ray.kill(actor, no_restart=True)
                    await asyncio.sleep(attempt)
            else:
                raise NodeLostError(
                    f"no cluster node could hold your sandbox after {PLACE_ATTEMPTS} attempts; try again shortly"
                )
            await self._mark_failed_nodes(agent, node)
            placement = _Placement(actor, node)
            self._placements[agent] = placement
            logger.info("sandbox of %s on node %s", agent, node[:12])
            return placement

    def _check_feasible(self) -> None:
        """Refuse at once what no live node can hold: Ray would otherwise leave the actor pending forever."""
        reason = missing_capacity(SANDBOX_RESOURCE, self._gpus, "AAR_RAY_SANDBOX_GPUS")
        if reason is not None:
            raise CapacityError(reason)

    async def _mark_lost(self, agent: str, placement: _Placement, error: Exception) -> None:
        del self._placements[agent]
        await self._ledger.mark_lost(agent, placement.node, _lost_reason(placement.node, type(error).__name__))
        logger.warning("%s's sandbox on node %s is gone: %s", agent, placement.node[:12], error)

    async def _mark_failed_nodes(self, agent: str, current: str) -> None:
        """Jobs of the agent on another node are lost: an agent has one sandbox actor, so a new one on
        another node means the old one's node failed (while no call noticed, or while this server was down)."""
        for node in await self._ledger.nodes(agent) - {current}:
            await self._ledger.mark_lost(agent, node, _lost_reason(node, "its sandbox is gone"))


def _lost_reason(node: str, why: str) -> str:
    return f"lost: the cluster node {node[:12]} running it failed ({why})"


async def open_cluster_sandbox(settings: Settings, config: SandboxConfig) -> RaySandbox:
    """The sandbox server's service under AAR_EXECUTOR=ray: the head joins the cluster, agents' actors follow."""
    await asyncio.to_thread(connect, settings)
    spec = NodeSandboxSpec(config, settings.sandbox_unsafe_no_isolation)
    return await RaySandbox.open(spec, settings.ray_node_dir, gpus=settings.ray_sandbox_gpus)
