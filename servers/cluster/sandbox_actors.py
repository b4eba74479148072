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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from servers.cluster.connection import connect
from servers.cluster.node_sandbox import NodeSandboxSpec, open_node_sandbox
from servers.kit.settings import Settings
from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import CapacityError
from servers.sandbox.jobs import JobRecord
from servers.sandbox.limits import SandboxLimits
from servers.sandbox.models import CommandResult, FileList, JobLog, JobState, WrittenFile
from servers.sandbox.store import Sandbox
from servers.sandbox.workspace import FileChunk

__all__ = ["SANDBOX_RESOURCE", "NodeLostError", "RaySandbox", "open_cluster_sandbox"]

logger = logging.getLogger(__name__)

SANDBOX_RESOURCE = "sandbox"


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
    jobs: dict[str, tuple[str, str, float]] = dataclasses.field(default_factory=dict)
    """Jobs started on this node: id -> (name, command, created_at), to report them if the node fails."""


class RaySandbox:
    """Sandbox's API, each call run by the calling agent's actor on a worker node."""

    def __init__(self, spec: NodeSandboxSpec, node_dir: Path, gpus: float) -> None:
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
        self._lost: dict[tuple[str, str], JobRecord] = {}
        self._placing = asyncio.Lock()

    @classmethod
    async def open(cls, spec: NodeSandboxSpec, node_dir: Path, *, gpus: float = 0.0) -> RaySandbox:
        return cls(spec, node_dir, gpus)

    async def close(self) -> None:
        """Nothing to stop: the agents' actors (workspaces, running jobs) live on for the next server."""

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
        wanted = self._gpus if gpus is None else gpus
        if wanted > self._gpus:
            raise CapacityError(
                f"this job asks for {wanted:g} GPUs but your sandbox holds {self._gpus:g} "
                "(setting AAR_RAY_SANDBOX_GPUS, the operator's per-agent GPUs); ask for at most that many"
            )
        job_id: str = await self._call(agent, "start_job", agent, name, command, timeout, gpus)
        self._placements[agent].jobs[job_id] = (name, command, time.time())
        return job_id

    async def job_status(self, agent: str, job_id: str) -> JobRecord:
        return await self._job_call(agent, "job_status", job_id)

    async def job_logs(self, agent: str, job_id: str, offset: int | None = None, limit: int = 64 * 1024) -> JobLog:
        return await self._call(agent, "job_logs", agent, job_id, offset, limit)  # type: ignore[no-any-return]

    async def list_jobs(self, agent: str) -> list[JobRecord]:
        lost = [info for (owner, _), info in self._lost.items() if owner == agent]
        return sorted([*lost, *await self._call(agent, "list_jobs", agent)], key=lambda info: info.created_at)

    async def cancel_job(self, agent: str, job_id: str) -> JobRecord:
        return await self._job_call(agent, "cancel_job", job_id)

    async def delete_job(self, agent: str, job_id: str) -> JobRecord:
        if (agent, job_id) in self._lost:
            return self._lost.pop((agent, job_id))
        return await self._call(agent, "delete_job", agent, job_id)  # type: ignore[no-any-return]

    async def wait_job(self, agent: str, job_id: str, timeout: float | None = None) -> JobRecord:
        return await self._job_call(agent, "wait_job", job_id, timeout)

    def node_of(self, agent: str) -> str:
        """The id of the node holding the agent's sandbox now (placed at its first call)."""
        return self._placements[agent].node

    # Placement

    async def _job_call(self, agent: str, method: str, job_id: str, *args: Any) -> JobRecord:
        """A call about one job; a job of a failed node reads as lost, with the reason."""
        if (agent, job_id) in self._lost:
            return self._lost[(agent, job_id)]
        try:
            return await self._call(agent, method, agent, job_id, *args)  # type: ignore[no-any-return]
        except NodeLostError:
            if (agent, job_id) in self._lost:
                return self._lost[(agent, job_id)]
            raise

    async def _call(self, agent: str, method: str, *args: Any) -> Any:
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

        placement = await self._place(agent)
        try:
            return await placement.actor.call.remote(method, *args)
        except RayTaskError as error:  # the sandbox's own error (bad input, a limit), without Ray's wrapping
            raise error.cause from None
        except (ActorDiedError, ActorUnavailableError) as error:
            self._mark_lost(agent, placement, error)
            ray.kill(placement.actor, no_restart=True)
            raise NodeLostError(
                f"the cluster node holding your sandbox ({placement.node[:12]}) failed: its workspace and running "
                "jobs are gone; call again to get a fresh workspace on another node, and restore it with load_snapshot"
            ) from None

    async def _place(self, agent: str) -> _Placement:
        """The agent's actor: the live one by name, or a new one on a node with room (never a silent wait)."""
        async with self._placing:
            if agent in self._placements:
                return self._placements[agent]
            self._check_feasible()
            actor = self._actor_class.options(
                name=f"sandbox-{agent}",
                get_if_exists=True,
                lifetime="detached",
                resources={SANDBOX_RESOURCE: 1},
                num_cpus=0,
                num_gpus=self._gpus,
                scheduling_strategy="SPREAD",
                max_concurrency=1000,
            ).remote(self._spec, self._node_dir, agent)
            node = await actor.node.remote()  # type: ignore[attr-defined]  # a Ray actor handle's method
            placement = _Placement(actor, node)
            self._placements[agent] = placement
            logger.info("sandbox of %s on node %s", agent, node[:12])
            return placement

    def _check_feasible(self) -> None:
        """Refuse at once what no live node can hold: Ray would otherwise leave the actor pending forever."""
        import ray

        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]  # ray is unannotated
        fitting = [r for r in nodes if r.get(SANDBOX_RESOURCE, 0) >= 1 and r.get("GPU", 0) >= self._gpus]
        if not fitting:
            most = max((r.get("GPU", 0) for r in nodes if r.get(SANDBOX_RESOURCE, 0) >= 1), default=0)
            raise CapacityError(
                f"no live cluster node with a '{SANDBOX_RESOURCE}' resource has {self._gpus:g} GPUs "
                f"(the most is {most:g}); lower AAR_RAY_SANDBOX_GPUS or add nodes (docs/cluster.md)"
            )

    def _mark_lost(self, agent: str, placement: _Placement, error: Exception) -> None:
        del self._placements[agent]
        reason = f"lost: the cluster node {placement.node[:12]} running it failed ({type(error).__name__})"
        now = time.time()
        for job_id, (name, command, created_at) in placement.jobs.items():
            self._lost[(agent, job_id)] = JobRecord(
                id=job_id, owner=agent, name=name, command=command, state=JobState.LOST, exit_code=None,
                limit_hit=None, error=reason, timeout_s=0.0, created_at=created_at, started_at=None, finished_at=now,
                log_path="",
            )  # fmt: skip
        logger.warning("%s's sandbox on node %s is gone: %s", agent, placement.node[:12], error)


async def open_cluster_sandbox(settings: Settings, config: SandboxConfig) -> RaySandbox:
    """The sandbox server's service under AAR_EXECUTOR=ray: the head joins the cluster, agents' actors follow."""
    await asyncio.to_thread(connect, settings)
    spec = NodeSandboxSpec(config, settings.sandbox_unsafe_no_isolation)
    return await RaySandbox.open(spec, settings.ray_node_dir, gpus=settings.ray_sandbox_gpus)
