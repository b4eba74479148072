"""The sandbox's store: the async API the MCP tools call one-to-one, each call on behalf of one agent.

It owns everything the sandbox keeps: each agent's workspace (read-write at /workspace inside,
nothing else of the service visible), its job records and private job logs, and its box (see
`box`). It answers in the wire models of `models`. Commands run isolated (see `isolation`); the
store refuses to open where bubblewrap cannot, unless opened with `unsafe_no_isolation=True`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from servers.sandbox.box import Boxes
from servers.sandbox.cgroups import MAX_CPU_WEIGHT, CgroupRoot
from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import CapacityError, QuotaError, ToolInputError
from servers.sandbox.gpu import GpuPool
from servers.sandbox.isolation import Isolation
from servers.sandbox.jobs import JobManager, JobRecord
from servers.sandbox.limits import MIB, Limit, naming
from servers.sandbox.models import CommandResult, FileList, JobLog, WrittenFile
from servers.sandbox.paths import validate_agent
from servers.sandbox.runner import HeadTailBuffer, Run
from servers.sandbox.workspace import FileChunk, Workspace

logger = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 100_000
MAX_JOB_NAME_CHARS = 100
LOG_READ_MAX = 1024 * 1024
EXEC_TIMEOUT_ADVICE = "; for longer work use start_job (it runs in the background: poll job_status, read job_logs)"


class Sandbox:
    """Per-agent workspaces, isolated commands and background jobs. Open with `await Sandbox.open(config)`."""

    def __init__(
        self, config: SandboxConfig, isolation: Isolation, cgroups: CgroupRoot | None, owns_cgroups: bool, lock_fd: int
    ) -> None:
        self.config = config
        self._lock_fd = lock_fd
        self.limits = config.limits
        self._isolation = isolation
        self._cgroups = cgroups
        self._owns_cgroups = owns_cgroups
        self.boxes = Boxes(isolation, cgroups, config.limits.box_idle_s)
        self._execs: Counter[str] = Counter()
        self._jobs: JobManager | None = None

    @classmethod
    async def open(
        cls, config: SandboxConfig, *, unsafe_no_isolation: bool = False, cgroups: CgroupRoot | None = None
    ) -> Sandbox:
        """Probe bubblewrap, recover job records, start queued jobs. Raises IsolationUnavailableError.

        `cgroups`: a service cgroup shared with other sandboxes, whose owner removes it, so that their
        agents' CPU weights compete directly (the PGR server's two sandboxes, one per strong-model mode;
        agent names must then differ between them). By default the sandbox makes its own."""
        config.root.mkdir(parents=True, exist_ok=True)
        os.chmod(config.root, 0o700)  # workspaces hold files owned by the mapped uid; keep other host users out
        lock_fd = _lock(config.root / "service.lock")
        owns_cgroups = cgroups is None
        if owns_cgroups:
            cgroups = CgroupRoot.detect(config.cpu_weight)
        if cgroups is None and os.geteuid() == 0:
            logger.warning(
                "no cgroups: memory is limited by RLIMIT_AS, and the process limit is NOT enforced "
                "(root, which bubblewrap maps the sandbox user to, is exempt from RLIMIT_NPROC)"
            )
        try:
            isolation = Isolation(config, GpuPool(config.gpu_devices), unsafe=unsafe_no_isolation)
            await isolation.probe()
        except BaseException:
            if cgroups and owns_cgroups:
                cgroups.remove()
            os.close(lock_fd)
            raise
        sandbox = cls(config, isolation, cgroups, owns_cgroups, lock_fd)
        sandbox._jobs = await JobManager.open(
            config.root / "jobs.sqlite", config.limits, config.root / "logs", sandbox._make_job_run
        )
        logger.info("sandbox ready in %s (cgroups: %s)", config.root, f"v{cgroups.version}" if cgroups else "none")
        return sandbox

    async def close(self) -> None:
        """Stop running jobs (recorded as lost), release the database and this service's cgroups."""
        await self._job_manager.close()
        await self.boxes.close()
        if self._cgroups and self._owns_cgroups:
            self._cgroups.remove()
        os.close(self._lock_fd)

    @property
    def isolated(self) -> bool:
        return not self._isolation.unsafe

    @property
    def cgroup_version(self) -> int | None:
        return self._cgroups.version if self._cgroups else None

    @property
    def cpu_shares(self) -> bool:
        """Whether each agent's commands and jobs share the CPU as one cgroup with the same weight as every other's."""
        return self._cgroups is not None and self._cgroups.cpu_dir is not None

    # Files

    async def write_file(self, agent: str, path: str, content: str | bytes) -> WrittenFile:
        """Create or replace a workspace file (parents created); symlinks in `path` are refused."""
        workspace = self._workspace(agent)
        data = content.encode() if isinstance(content, str) else content
        await asyncio.to_thread(workspace.write, path, data)
        return WrittenFile(path=path, size=len(data))

    async def read_file(self, agent: str, path: str, offset: int = 0, limit: int | None = None) -> FileChunk:
        """Part of a workspace file: up to `limit` bytes (at most read_max_bytes) from `offset`."""
        return await asyncio.to_thread(self._workspace(agent).read, path, offset, limit)

    async def list_files(
        self, agent: str, path: str = ".", recursive: bool = False, offset: int = 0, limit: int | None = None
    ) -> FileList:
        """A page of at most `limit` (capped by list_max_entries) entries from `offset`; next_offset continues."""
        return await asyncio.to_thread(self._workspace(agent).list, path, recursive, offset, limit)

    async def export_files(self, agent: str, paths: Sequence[str]) -> dict[str, bytes]:
        """{path: content} of the named files and of all files under the named directories (for save_snapshot)."""
        return await asyncio.to_thread(self._workspace(agent).export, list(paths))

    async def import_files(self, agent: str, files: Mapping[str, str | bytes]) -> list[str]:
        """Write a {path: content} map into the workspace (for load_snapshot); returns the paths written."""
        data = {path: content.encode() if isinstance(content, str) else content for path, content in files.items()}
        return await asyncio.to_thread(self._workspace(agent).import_, data)

    async def remove_workspace(self, agent: str) -> None:
        """Delete a workspace once its owner is done with it (the PGR server's per-submission ones)."""
        workspace = self._workspace(agent)
        await self.boxes.remove(agent)  # the box binds this directory; a new one would bind the next
        await asyncio.to_thread(workspace.remove)

    async def set_cpu_weight(self, agent: str, weight: int) -> None:
        """Weigh the agent's commands and jobs against other agents' while they all want the CPU (cgroup v2's
        scale, 1-10000; every agent starts at 100). The PGR server lowers an old submission's runs with it.
        Where there is no cpu cgroup (see `cpu_shares`) nothing changes."""
        validate_agent(agent)
        if not isinstance(weight, int) or not 1 <= weight <= MAX_CPU_WEIGHT:
            raise ToolInputError(f"a CPU weight is a whole number from 1 to {MAX_CPU_WEIGHT}, not {weight!r}")
        await self.boxes.set_cpu_weight(agent, weight)

    # Commands

    async def exec(self, agent: str, command: str, timeout: float | None = None) -> CommandResult:
        """Run `command` with bash in the agent's sandbox and wait for it (at most `timeout` seconds)."""
        workspace = self._workspace(agent)
        _check_command(command)
        if self._execs[agent] >= self.limits.max_execs_per_agent:
            raise CapacityError(
                f"you already run {self._execs[agent]} commands at once (limit {self.limits.max_execs_per_agent}); "
                "wait for one, or use start_job" + naming("max_execs_per_agent")
            )
        timeout_s = _timeout(timeout, self.limits.exec_timeout_s, self.limits.exec_timeout_max_s)
        stdout, stderr = HeadTailBuffer(self.limits.output_bytes), HeadTailBuffer(self.limits.output_bytes)
        self._execs[agent] += 1
        try:
            run = Run(
                self._isolation,
                self.boxes,
                agent,
                workspace,
                self.limits,
                self._cgroups,
                command=command,
                timeout_s=timeout_s,
                cpu_s=self.limits.exec_cpu_s,
            )
            outcome = await run.execute(stdout, stderr)
        finally:
            self._execs[agent] -= 1
        error = outcome.error
        if outcome.limit is Limit.TIMEOUT:
            error = f"{error}{EXEC_TIMEOUT_ADVICE}"
        return CommandResult(
            exit_code=outcome.exit_code,
            stdout=stdout.text("stdout"),
            stderr=stderr.text("stderr"),
            duration_s=round(outcome.duration_s, 4),
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            limit_hit=outcome.limit,
            error=error,
        )

    # Jobs

    async def start_job(
        self, agent: str, name: str, command: str, timeout: float | None = None, gpus: int | None = None
    ) -> str:
        """Queue `command` as a background job (stdout and stderr go to its log); returns the job id.

        `gpus`: how many GPUs it gets (None: one where there are any; more than there are is refused
        at once, never queued). Refused while the agent's disk quota is used up: the log would have
        nowhere to go.
        """
        workspace = self._workspace(agent)
        _check_command(command)
        if gpus is not None:
            if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
                raise ToolInputError(f"gpus must be a whole number of GPUs, 0 or more; got {gpus!r}")
            self._isolation.check_gpus(gpus)
        await self._job_manager.forget_old_jobs(agent)
        used = await asyncio.to_thread(workspace.usage)
        if used.bytes >= self.limits.workspace_mib * MIB:
            raise QuotaError(
                f"your disk quota of {self.limits.workspace_mib} MiB is used up ({used.bytes // MIB} MiB), so a new "
                f"job could not write its log; {self.limits.quota_advice()}" + naming("workspace_mib")
            )
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_JOB_NAME_CHARS or not name.isprintable():
            raise ToolInputError(f"invalid job name {name!r}: use 1-{MAX_JOB_NAME_CHARS} printable characters")
        timeout_s = _timeout(timeout, self.limits.job_timeout_s, self.limits.job_timeout_s)
        job = await self._job_manager.submit(agent, name, command, timeout_s, gpus)
        return job.id

    async def job_status(self, agent: str, job_id: str) -> JobRecord:
        return await self._job_manager.get(validate_agent(agent), job_id)

    async def job_logs(self, agent: str, job_id: str, offset: int | None = None, limit: int = 64 * 1024) -> JobLog:
        """The log's tail (offset None), or `limit` bytes from `offset` (follow with next_offset)."""
        return await self._job_manager.logs(validate_agent(agent), job_id, offset, max(1, min(limit, LOG_READ_MAX)))

    async def list_jobs(self, agent: str) -> list[JobRecord]:
        return await self._job_manager.list(validate_agent(agent))

    async def cancel_job(self, agent: str, job_id: str) -> JobRecord:
        """Cancel a queued job or stop a running one with its whole process tree."""
        return await self._job_manager.cancel(validate_agent(agent), job_id)

    async def delete_job(self, agent: str, job_id: str) -> JobRecord:
        """Delete a finished job and its log (they count toward the agent's disk quota)."""
        return await self._job_manager.delete(validate_agent(agent), job_id)

    async def wait_job(self, agent: str, job_id: str, timeout: float | None = None) -> JobRecord:
        """The job once finished, or as it is after `timeout` seconds."""
        return await self._job_manager.wait(validate_agent(agent), job_id, timeout)

    # Internals

    @property
    def _job_manager(self) -> JobManager:
        assert self._jobs is not None, "use Sandbox.open()"
        return self._jobs

    def _workspace(self, agent: str) -> Workspace:
        name = validate_agent(agent)
        workspace = Workspace(
            self.config.root / "workspaces" / name, self.limits, logs=self.config.root / "logs" / name
        )
        workspace.ensure()
        return workspace

    def _make_job_run(self, owner: str, command: str, timeout_s: float, gpus: int | None) -> Run:
        return Run(
            self._isolation,
            self.boxes,
            owner,
            self._workspace(owner),
            self.limits,
            self._cgroups,
            command=command,
            timeout_s=timeout_s,
            cpu_s=self.limits.job_cpu_s,
            gpus=gpus,
        )


def _lock(path: Path) -> int:
    """Hold an exclusive lock on the data directory: a second service would mark this one's jobs lost."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"another sandbox service already uses {path.parent}; run one per data directory") from None
    return fd


def _check_command(command: str) -> None:
    if not isinstance(command, str) or not command.strip():
        raise ToolInputError("the command is empty; pass a shell command such as 'python train.py'")
    if len(command) > MAX_COMMAND_CHARS or "\0" in command:
        raise ToolInputError(
            f"the command must be at most {MAX_COMMAND_CHARS} characters without NUL; "
            "put long scripts in a file with write_file"
        )


def _timeout(requested: float | None, default: float, maximum: float) -> float:
    if requested is None:
        return default
    if not isinstance(requested, int | float) or requested <= 0:
        raise ToolInputError(f"timeout must be a positive number of seconds, not {requested!r}")
    return min(float(requested), maximum)
