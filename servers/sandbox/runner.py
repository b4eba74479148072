"""Running one sandboxed command to the end: output capped while streaming, limits watched, tree killed.

A `Run` owns its process tree from spawn to reap. It ends the command when the wall clock, the
cgroup's process count or the workspace size is exceeded, or when cancelled (SIGTERM to every
process inside, a grace period, then SIGKILL to bubblewrap, whose death takes the PID namespace
and everything in it, daemons included). Whatever ended it is reported as a `Limit` with a message
that names the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from servers.sandbox.cgroups import Cgroup, CgroupRoot
from servers.sandbox.isolation import Isolation, Launch
from servers.sandbox.limits import MIB, Limit, SandboxLimits
from servers.sandbox.workspace import Workspace

logger = logging.getLogger(__name__)

TICK_S = 0.2
DRAIN_S = 5.0
CHUNK = 65536
_run_numbers = itertools.count(1)


class OutputSink(Protocol):
    """Where a stream of the command's output goes; it decides what to keep."""

    truncated: bool

    def write(self, data: bytes) -> None: ...


class HeadTailBuffer:
    """Keeps the first and the last `cap // 2` bytes of a stream in memory; the middle is counted and cut.

    The end of an output (the error, the final metric) matters as much as its start.
    """

    def __init__(self, cap: int) -> None:
        self._half = max(cap // 2, 1)
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self.truncated = False

    def write(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self._half:
                del self._tail[: len(self._tail) - self._half]
                self.truncated = True

    def text(self, name: str) -> str:
        """The output as text; where the middle was cut, a note says how much and how to get all of it."""
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        if not self.truncated:
            return head + tail
        cut = self.total - len(self._head) - len(self._tail)
        return (
            f"{head}\n[sandbox: {cut} of the {self.total} bytes of {name} cut from the middle (exec keeps the first "
            f"and last {self._half} bytes); for all of it, run the command with start_job and read the log with "
            "job_logs, offset and limit]\n"
            f"{tail}"
        )


class LogFile:
    """Appends a stream to a log file the server owns, up to `cap` bytes, then notes the truncation."""

    def __init__(self, path: Path, cap: int) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._cap = cap
        self._size = self._file.tell()
        self.truncated = False

    def write(self, data: bytes) -> None:
        if self.truncated:
            return
        room = self._cap - self._size
        if len(data) > room:
            self.truncated = True
            data = (
                data[: max(room, 0)]
                + f"\n[sandbox: log limit of {self._cap} bytes reached; further output discarded]\n".encode()
            )
        self._file.write(data)
        self._size += len(data)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Outcome:
    """How a command ended: its exit code (128+N for signal N), the limit that ended it, and why."""

    exit_code: int | None
    limit: Limit | None
    error: str | None
    cancelled: bool
    duration_s: float


class Run:
    """One command in one workspace, run to completion by `execute`; `cancel` may be called any time."""

    def __init__(
        self,
        isolation: Isolation,
        workspace: Workspace,
        limits: SandboxLimits,
        cgroups: CgroupRoot | None,
        *,
        command: str,
        timeout_s: float,
        cpu_s: int,
    ) -> None:
        self._isolation = isolation
        self._workspace = workspace
        self._limits = limits
        self._start_usage: Any = None
        self._cgroups = cgroups
        self._command = command
        self._timeout_s = timeout_s
        self._cpu_s = cpu_s
        self._cancel = asyncio.Event()
        self._grace_s = limits.kill_grace_s

    def cancel(self, *, immediately: bool = False) -> None:
        """Ask the run to stop: SIGTERM inside, then SIGKILL after the grace period (at once if `immediately`)."""
        if immediately:
            self._grace_s = 0.0
        self._cancel.set()

    async def execute(self, stdout: OutputSink, stderr: OutputSink | None) -> Outcome:
        """Run the command, streaming stdout and stderr (merged into `stdout` when `stderr` is None)."""
        started = time.monotonic()
        cgroup = (
            self._cgroups.create(
                f"run-{os.getpid()}-{next(_run_numbers)}", self._limits.memory_mib * MIB, self._limits.max_processes
            )
            if self._cgroups
            else None
        )
        self._start_usage = await asyncio.to_thread(self._workspace.usage)
        status_read, status_write = os.pipe()
        launch: Launch | None = None
        try:
            launch = self._isolation.launch(
                self._workspace.root, self._command, cpu_s=self._cpu_s, cgroup=cgroup, status_fd=status_write
            )
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE if stderr is not None else asyncio.subprocess.STDOUT,
                pass_fds=launch.pass_fds,
                start_new_session=True,
            )
        except BaseException:
            os.close(status_read)
            if cgroup:
                cgroup.kill_and_remove()
            raise
        finally:
            os.close(status_write)
            for fd in launch.owned_fds if launch else ():
                os.close(fd)
        pumps = [asyncio.create_task(_pump(process.stdout, stdout))]
        if stderr is not None:
            pumps.append(asyncio.create_task(_pump(process.stderr, stderr)))
        try:
            limit, cancelled = await self._watch(process, launch, cgroup, started)
        finally:
            await _reap(process, pumps)
            status = _read_status(status_read)
            oom, pids = (cgroup.oom_killed(), cgroup.pids_refused()) if cgroup else (False, False)
            if cgroup:
                await asyncio.to_thread(cgroup.kill_and_remove)
        return await self._outcome(process, launch, status, limit, cancelled, started, oom=oom, pids=pids)

    async def _watch(
        self, process: asyncio.subprocess.Process, launch: Launch, cgroup: Cgroup | None, started: float
    ) -> tuple[Limit | None, bool]:
        """Wait for exit while enforcing limits; returns the limit that ended the run, and whether it was cancelled."""
        exited = asyncio.create_task(process.wait())
        cancelled = asyncio.create_task(self._cancel.wait())
        deadline = started + self._timeout_s
        next_poll = started + self._limits.workspace_poll_s
        try:
            while not exited.done():
                now = time.monotonic()
                wake = min(deadline, next_poll, now + TICK_S if cgroup else deadline)
                await asyncio.wait({exited, cancelled}, timeout=max(wake - now, 0), return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    break
                if cancelled.done():
                    await _terminate(process, launch, exited, self._grace_s)
                    return None, True
                limit = None
                if time.monotonic() >= deadline:
                    limit = Limit.TIMEOUT
                elif cgroup and cgroup.pids_refused():
                    limit = Limit.PROCESSES
                elif time.monotonic() >= next_poll:
                    limit = await self._workspace_limit()
                    next_poll = time.monotonic() + self._limits.workspace_poll_s
                if limit:
                    await _terminate(process, launch, exited, grace_s=0)
                    return limit, False
            return None, False
        finally:
            cancelled.cancel()
            if not exited.done():
                await _terminate(process, launch, exited, grace_s=0)

    async def _workspace_limit(self) -> Limit | None:
        """The workspace limit this run breaks: over it, and grown since the run started.

        A workspace already over its limit must still let a cleanup (`rm`) run.
        """
        usage = await asyncio.to_thread(self._workspace.usage)
        start = self._start_usage
        if usage.bytes > self._limits.workspace_mib * MIB and usage.bytes > start.bytes:
            return Limit.WORKSPACE_SIZE
        if usage.files > self._limits.workspace_max_files and usage.files > start.files:
            return Limit.WORKSPACE_FILES
        return None

    async def _outcome(
        self,
        process: asyncio.subprocess.Process,
        launch: Launch,
        status: dict[str, int],
        limit: Limit | None,
        cancelled: bool,
        started: float,
        *,
        oom: bool,
        pids: bool,
    ) -> Outcome:
        code = process.returncode
        exit_code = 128 - code if code is not None and code < 0 else code
        error = None
        if launch.supervisors and "child-pid" not in status and not (limit or cancelled):
            error = "the sandbox failed to start (see stderr)"
        if limit is None and not cancelled and error is None:
            if oom:
                limit = Limit.MEMORY
            elif exit_code == 128 + signal.SIGXCPU:
                limit = Limit.CPU
            elif exit_code == 128 + signal.SIGXFSZ:
                limit = Limit.FILE_SIZE
            elif pids:
                limit = Limit.PROCESSES
            else:
                limit = await self._workspace_limit()
        if limit:
            error = self._limits.describe(limit, timeout_s=self._timeout_s, cpu_s=self._cpu_s)
        elif cancelled:
            error = "cancelled"
        return Outcome(exit_code, limit, error, cancelled, time.monotonic() - started)


async def _pump(stream: asyncio.StreamReader | None, sink: OutputSink) -> None:
    """Copy a pipe into a sink until EOF; past the sink's cap data is read and dropped, so the command never blocks."""
    assert stream is not None
    while chunk := await stream.read(CHUNK):
        sink.write(chunk)


async def _terminate(
    process: asyncio.subprocess.Process, launch: Launch, exited: asyncio.Task[int], grace_s: float
) -> None:
    """SIGTERM the command's processes (not bwrap's), wait up to `grace_s`, then SIGKILL the whole tree."""
    if grace_s > 0:
        _signal_tree(process.pid, signal.SIGTERM, min_depth=launch.supervisors)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), grace_s)
    if not exited.done():
        _kill_all(process.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), DRAIN_S)


async def _reap(process: asyncio.subprocess.Process, pumps: list[asyncio.Task[None]]) -> None:
    """After exit: kill stragglers of the process group, finish reading the pipes (bounded)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    _, late = await asyncio.wait(pumps, timeout=DRAIN_S)
    for task in late:
        task.cancel()
    if process.returncode is None:
        _kill_all(process.pid)
        await process.wait()


def _kill_all(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _signal_tree(pid, signal.SIGKILL, min_depth=0)


def _signal_tree(root: int, signum: int, min_depth: int) -> None:
    """Send `signum` to every descendant of `root` at least `min_depth` levels below it (root is level 0)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                ppid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(entry.name))
    level, depth = [root], 0
    while level:
        if depth >= min_depth:
            for pid in level:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
        level = [child for pid in level for child in children.get(pid, ())]
        depth += 1


def _read_status(fd: int) -> dict[str, int]:
    """What bwrap reported on --json-status-fd ('child-pid' once the sandbox is up, 'exit-code')."""
    status: dict[str, int] = {}
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, CHUNK):
            data += chunk
    os.close(fd)
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            status.update(json.loads(line))
    return status
