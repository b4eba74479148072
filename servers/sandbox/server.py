"""The sandbox MCP server: each agent's own isolated workspace, commands and long jobs.

Every command runs under bubblewrap with no network and a read-only view of only the Python
environment and the method API (see servers/sandbox/config.py). Run alone with
`aar serve sandbox` (stdio) or `aar serve sandbox --http`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from servers.kit.annotations import APPEND, DESTRUCTIVE, OVERWRITE, READ_ONLY
from servers.kit.errors import ToolInputError
from servers.kit.hosting import lifespan_state, new_server
from servers.kit.identity import calling_agent
from servers.kit.progress import with_progress
from servers.kit.settings import Settings
from servers.sandbox.config import SandboxConfig
from servers.sandbox.limits import SandboxLimits
from servers.sandbox.models import (
    CommandResult,
    FileList,
    FileText,
    Job,
    JobList,
    JobLog,
    JobState,
    LoadedSnapshot,
    WrittenFile,
)
from servers.sandbox.store import Sandbox
from servers.storage.models import Snapshot, SnapshotId
from servers.storage.store import SnapshotRepository, open_repository

INSTRUCTIONS = """\
Your own isolated workspace (/workspace inside commands): write files, run commands with `exec`
(seconds to a minute or two) or `start_job` (long experiments; they keep running when you disconnect;
poll `job_status`/`job_logs`). Processes a command leaves behind end with it; /tmp is shared by
your commands and jobs but may be emptied when you are idle, so keep results in /workspace. There is
no network. Python with torch and transformers is there, and the method API (`import
servers.w2s.api`). `load_snapshot` checks out anyone's stored snapshot; `save_snapshot` stores your
files as a snapshot to cite and submit."""

WorkspacePath = Annotated[str, Field(min_length=1, max_length=1024, description="Relative to your workspace.")]
JobId = Annotated[str, Field(min_length=1, max_length=64, description="A job id from start_job or list_jobs.")]
Command = Annotated[str, Field(min_length=1, max_length=100_000, description="A bash command run in /workspace.")]


@dataclass
class SandboxState:
    sandbox: Sandbox
    repository: SnapshotRepository
    local_agent: str | None


def _state(ctx: Context) -> SandboxState:
    return lifespan_state(ctx, SandboxState)


def sandbox_config(settings: Settings) -> SandboxConfig:
    """The sandbox service configuration that `settings` describe (limits overrides, GPUs, model folders)."""
    try:
        limits = SandboxLimits(**settings.sandbox_limits)
    except TypeError as error:
        known = ", ".join(field.name for field in dataclasses.fields(SandboxLimits))
        raise ValueError(f"AAR_SANDBOX_LIMITS: {error}; known limits: {known}") from None
    return SandboxConfig(
        data_dir=settings.data_dir,
        limits=limits,
        gpu_devices=tuple(settings.sandbox_gpu_devices),
        extra_ro_paths=tuple(str(path) for path in settings.sandbox_model_dirs),
        mounts=((str(settings.public_tasks_dir), "/tasks"),),
    )


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The sandbox over `settings.data_dir/sandbox`; refuses to start where bubblewrap cannot run."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[SandboxState]:
        if settings.executor == "ray":  # each agent's workspace and commands on a cluster node (docs/cluster.md)
            from servers.cluster.sandbox_actors import open_cluster_sandbox

            sandbox: Sandbox = await open_cluster_sandbox(settings, sandbox_config(settings))  # type: ignore[assignment]
        else:
            sandbox = await Sandbox.open(
                sandbox_config(settings), unsafe_no_isolation=settings.sandbox_unsafe_no_isolation
            )
        try:
            yield SandboxState(sandbox=sandbox, repository=await open_repository(settings), local_agent=local_agent)
        finally:
            await sandbox.close()

    server = new_server(
        "sandbox", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan
    )

    def agent_and_sandbox(ctx: Context) -> tuple[str, Sandbox]:
        state = _state(ctx)
        return calling_agent(state.local_agent), state.sandbox

    @server.tool(title="Write a file", annotations=OVERWRITE)
    async def write_file(path: WorkspacePath, content: str, ctx: Context) -> WrittenFile:
        """Create or replace a text file in your workspace (folders are created)."""
        agent, sandbox = agent_and_sandbox(ctx)
        return await sandbox.write_file(agent, path, content)

    @server.tool(title="Read a file", annotations=READ_ONLY)
    async def read_file(
        path: WorkspacePath,
        ctx: Context,
        offset: Annotated[int, Field(ge=0, description="Byte offset to start at.")] = 0,
        limit: Annotated[int, Field(ge=1, le=1_048_576, description="Most bytes to return.")] = 65_536,
    ) -> FileText:
        """Read part of a file of your workspace; use offset/next_offset to page through a large one."""
        agent, sandbox = agent_and_sandbox(ctx)
        chunk = await sandbox.read_file(agent, path, offset, limit)
        return FileText(
            path=chunk.path,
            offset=chunk.offset,
            next_offset=chunk.offset + len(chunk.data),
            size=chunk.size,
            eof=chunk.eof,
            content=chunk.text,
        )

    @server.tool(title="List files", annotations=READ_ONLY)
    async def list_files(
        ctx: Context,
        path: Annotated[str, Field(max_length=1024, description="Folder in your workspace.")] = ".",
        recursive: bool = False,
        offset: Annotated[int, Field(ge=0, description="Entries to skip: next_offset of the previous page.")] = 0,
        limit: Annotated[int, Field(ge=1, le=10_000, description="Most entries (capped by the server).")] = 200,
    ) -> FileList:
        """List a folder of your workspace, a page at a time (sorted, depth first); next_offset continues."""
        agent, sandbox = agent_and_sandbox(ctx)
        return await sandbox.list_files(agent, path, recursive, offset, limit)

    @server.tool(title="Run a command", name="exec", annotations=DESTRUCTIVE)
    async def exec_command(
        command: Command,
        ctx: Context,
        timeout_s: Annotated[float | None, Field(gt=0, description="Wall-clock limit; default from settings.")] = None,
    ) -> CommandResult:
        """Run a bash command in your workspace and wait for it: exit code, output, duration, any limit hit.

        For short commands (default limit 120 s; progress is reported while it runs). Use start_job for
        training and anything longer. Long output keeps its start and end; start_job's log holds all of it."""
        agent, sandbox = agent_and_sandbox(ctx)
        limits = sandbox.limits
        total = min(timeout_s, limits.exec_timeout_max_s) if timeout_s else limits.exec_timeout_s
        return await with_progress(
            ctx,
            sandbox.exec(agent, command, timeout_s),
            every_s=limits.exec_progress_s,
            total_s=total,
            say=lambda elapsed: f"running for {elapsed:.0f} s of at most {total:g} s; use start_job for long work",
        )

    @server.tool(title="Start a background job", annotations=DESTRUCTIVE)
    async def start_job(
        name: Annotated[str, Field(min_length=1, max_length=100, description="A name you will recognise.")],
        command: Command,
        ctx: Context,
        timeout_s: Annotated[float | None, Field(gt=0, description="Wall-clock limit; default 12 h.")] = None,
        gpus: Annotated[
            int | None,
            Field(ge=0, le=64, description="GPUs the job needs (0: none); default one where the sandbox has any."),
        ] = None,
    ) -> Job:
        """Start a long command in the background; it runs on when you disconnect. Poll job_status."""
        agent, sandbox = agent_and_sandbox(ctx)
        job_id = await sandbox.start_job(agent, name, command, timeout_s, gpus)
        return (await sandbox.job_status(agent, job_id)).public()

    @server.tool(title="A job's status", annotations=READ_ONLY)
    async def job_status(job_id: JobId, ctx: Context) -> Job:
        """The state of one of your jobs."""
        agent, sandbox = agent_and_sandbox(ctx)
        return (await sandbox.job_status(agent, job_id)).public()

    @server.tool(title="A job's logs", annotations=READ_ONLY)
    async def job_logs(
        job_id: JobId,
        ctx: Context,
        offset: Annotated[int | None, Field(ge=0, description="Byte offset; omit for the tail.")] = None,
        limit: Annotated[int, Field(ge=1, le=1_048_576)] = 65_536,
    ) -> JobLog:
        """A job's combined output: the tail, or from an offset (next_offset continues)."""
        agent, sandbox = agent_and_sandbox(ctx)
        return await sandbox.job_logs(agent, job_id, offset, limit)

    @server.tool(title="List jobs", annotations=READ_ONLY)
    async def list_jobs(
        ctx: Context,
        state: Annotated[JobState | None, Field(description="Only jobs in this state.")] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="Most jobs to return.")] = 100,
    ) -> JobList:
        """Your jobs, newest first, including finished ones and ones lost in a server restart."""
        agent, sandbox = agent_and_sandbox(ctx)
        jobs = [info.public() for info in reversed(await sandbox.list_jobs(agent)) if state in (None, info.state)]
        return JobList(jobs=jobs[:limit])

    @server.tool(title="Cancel a job", annotations=DESTRUCTIVE)
    async def cancel_job(job_id: JobId, ctx: Context) -> Job:
        """Stop a job and every process it started."""
        agent, sandbox = agent_and_sandbox(ctx)
        return (await sandbox.cancel_job(agent, job_id)).public()

    @server.tool(title="Delete a finished job", annotations=DESTRUCTIVE)
    async def delete_job(job_id: JobId, ctx: Context) -> Job:
        """Delete a finished job and its log, which count toward your disk quota (old ones go by themselves)."""
        agent, sandbox = agent_and_sandbox(ctx)
        return (await sandbox.delete_job(agent, job_id)).public()

    @server.tool(title="Check out a snapshot", annotations=OVERWRITE)
    async def load_snapshot(snapshot: SnapshotId, ctx: Context) -> LoadedSnapshot:
        """Check a stored snapshot (anyone's) out into your workspace, overwriting files of the same name."""
        state = _state(ctx)
        agent = calling_agent(state.local_agent)
        files = await state.repository.read_all(snapshot)
        written = await state.sandbox.import_files(agent, files)
        return LoadedSnapshot(snapshot=await state.repository.resolve(snapshot), files=written)

    @server.tool(title="Save the workspace as a snapshot", annotations=APPEND)
    async def save_snapshot(
        paths: Annotated[list[WorkspacePath], Field(min_length=1, max_length=500, description="Files or folders.")],
        message: Annotated[str, Field(min_length=1, max_length=2000, description="What changed and why.")],
        ctx: Context,
        based_on: Annotated[SnapshotId | None, Field(description="The snapshot this work builds on.")] = None,
    ) -> Snapshot:
        """Store chosen workspace files (text only) as a new snapshot on your own storage branch."""
        state = _state(ctx)
        agent = calling_agent(state.local_agent)
        exported = await state.sandbox.export_files(agent, paths)
        files = {}
        for path, data in exported.items():
            try:
                files[path] = data.decode()
            except UnicodeDecodeError:
                raise ToolInputError(f"{path!r} is not UTF-8 text: snapshots hold code, not binaries") from None
        return await state.repository.save(agent=agent, files=files, message=message, based_on=based_on, delete=[])

    return server
