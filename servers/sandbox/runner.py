"""Running one sandboxed command to the end: output capped while streaming, limits watched, tree killed.

A `Run` has its agent's box (see `box`) fork the command and owns the command's processes from
then on. It ends the command when the wall clock, the cgroup's process count or the workspace size
is exceeded, or when cancelled (SIGTERM to the command's process group, a grace period, then
SIGKILL to the group and to everything in its cgroup). When the command exits, whatever it left
running is killed too: everything in its cgroup, its process group (by the init), and, once the
agent runs nothing else, every other process in the box. Whatever ended it is reported as a
`Limit` with a message that names the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from servers.sandbox.box import BoxError, Boxes, Spawned
from servers.sandbox.cgroups import Cgroup, CgroupRoot
from servers.sandbox.isolation import Isolation
from servers.sandbox.limits import MIB, Limit, SandboxLimits
from servers.sandbox.workspace import Usage, Workspace

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
class Ending:
    """What is known once a command has exited: the cgroup's OOM kill and refused forks, the workspace limit broken."""

    oom: bool
    pids_refused: bool
    workspace: Limit | None


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
        boxes: Boxes,
        agent: str,
        workspace: Workspace,
        limits: SandboxLimits,
        cgroups: CgroupRoot | None,
        *,
        command: str,
        timeout_s: float,
        cpu_s: int,
        gpus: int | None = None,
    ) -> None:
        self._isolation = isolation
        self._boxes = boxes
        self._agent = agent
        self._workspace = workspace
        self._limits = limits
        self._start_usage: Any = None
        self._cgroups = cgroups
        self._command = command
        self._timeout_s = timeout_s
        self._cpu_s = cpu_s
        self._gpus = gpus
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
        try:
            box = await self._boxes.get(self._agent, self._workspace.root)
        except BoxError as error:
            return Outcome(None, None, str(error), False, time.monotonic() - started)
        start_usage = asyncio.create_task(asyncio.to_thread(self._workspace.usage))
        cgroup = (
            self._cgroups.create(
                f"run-{os.getpid()}-{next(_run_numbers)}",
                self._limits.memory_mib * MIB,
                self._limits.max_processes,
                box.cgroup,
            )
            if self._cgroups
            else None
        )
        spec = self._isolation.command(
            self._workspace.root, self._command, cpu_s=self._cpu_s, cgroup=cgroup, gpus=self._gpus
        )
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(2 if stderr is not None else 1)]
        try:
            self._start_usage = await start_usage  # before the command runs: only its own growth is held against it
            spawned = box.spawn(
                spec, pipes[0][1], pipes[1][1] if stderr is not None else None, cgroup.procs_files if cgroup else []
            )
        except BaseException as error:
            for read, _ in pipes:
                os.close(read)
            if cgroup:
                await asyncio.to_thread(cgroup.kill_and_remove)
            if isinstance(error, BoxError):
                return Outcome(None, None, str(error), False, time.monotonic() - started)
            raise
        finally:
            for _, write in pipes:
                os.close(write)
        sinks = (stdout, stderr)
        pumps = [asyncio.create_task(_pump(read, sink)) for (read, _), sink in zip(pipes, sinks, strict=False)]
        try:
            limit, cancelled = await self._watch(spawned, cgroup, started)
        finally:
            exit_code = await _exited(spawned)
            end = await asyncio.to_thread(self._clean_up, cgroup)
            _, late = await asyncio.wait(pumps, timeout=DRAIN_S)
            for task in late:
                task.cancel()
        return self._outcome(exit_code, limit, cancelled, started, end)

    def _clean_up(self, cgroup: Cgroup | None) -> Ending:
        """After exit, in a thread: kill what the command left in its cgroup (the init kills its process
        group), read what the cgroup saw, remove it, and measure the workspace."""
        oom = pids = False
        if cgroup:
            cgroup.kill_pids()
            oom, pids = cgroup.oom_killed(), cgroup.pids_refused()
            cgroup.kill_and_remove()
        return Ending(oom, pids, self._workspace_breach(self._workspace.usage()))

    async def _watch(self, spawned: Spawned, cgroup: Cgroup | None, started: float) -> tuple[Limit | None, bool]:
        """Wait for exit while enforcing limits; returns the limit that ended the run, and whether it was cancelled."""
        exited = spawned.exited
        cancelled = asyncio.create_task(self._cancel.wait())
        deadline = started + self._timeout_s
        next_poll = started + self._limits.workspace_poll_s
        try:
            while not exited.done():
                now = time.monotonic()
                wake = min(deadline, next_poll, now + TICK_S if cgroup else deadline)
                watched: set[asyncio.Future[Any]] = {exited, cancelled}
                await asyncio.wait(watched, timeout=max(wake - now, 0), return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    break
                if cancelled.done():
                    await _terminate(spawned, cgroup, self._grace_s)
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
                    await _terminate(spawned, cgroup, grace_s=0)
                    return limit, False
            return None, False
        finally:
            cancelled.cancel()
            if not exited.done():
                await _terminate(spawned, cgroup, grace_s=0)

    async def _workspace_limit(self) -> Limit | None:
        return self._workspace_breach(await asyncio.to_thread(self._workspace.usage))

    def _workspace_breach(self, usage: Usage) -> Limit | None:
        """The workspace limit this run breaks: over it, and grown since the run started.

        A workspace already over its limit must still let a cleanup (`rm`) run.
        """
        start = self._start_usage
        if usage.bytes > self._limits.workspace_mib * MIB and usage.bytes > start.bytes:
            return Limit.WORKSPACE_SIZE
        if usage.files > self._limits.workspace_max_files and usage.files > start.files:
            return Limit.WORKSPACE_FILES
        return None

    def _outcome(
        self, exit_code: int | str, limit: Limit | None, cancelled: bool, started: float, end: Ending
    ) -> Outcome:
        error: str | None = None
        code: int | None
        if isinstance(exit_code, str):  # the box died under the command
            error, code = exit_code, None
        elif exit_code < 0:
            code = 128 - exit_code
        else:
            code = exit_code
        if limit is None and not cancelled and error is None:
            if end.oom:
                limit = Limit.MEMORY
            elif code == 128 + signal.SIGXCPU:
                limit = Limit.CPU
            elif code == 128 + signal.SIGXFSZ:
                limit = Limit.FILE_SIZE
            elif end.pids_refused:
                limit = Limit.PROCESSES
            else:
                limit = end.workspace
        if limit:
            error = self._limits.describe(limit, timeout_s=self._timeout_s, cpu_s=self._cpu_s)
        elif cancelled:
            error = "cancelled"
        return Outcome(code, limit, error, cancelled, time.monotonic() - started)


async def _pump(fd: int, sink: OutputSink | None) -> None:
    """Copy a pipe into a sink until EOF; past the sink's cap data is read and dropped, so the command never blocks."""
    assert sink is not None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while chunk := await reader.read(CHUNK):
            sink.write(chunk)
    finally:
        transport.close()


async def _terminate(spawned: Spawned, cgroup: Cgroup | None, grace_s: float) -> None:
    """SIGTERM the command's process group, wait up to `grace_s`, then SIGKILL it and everything in its cgroup."""
    if grace_s > 0:
        spawned.signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError, BoxError):
            await asyncio.wait_for(asyncio.shield(spawned.exited), grace_s)
    if not spawned.exited.done():
        spawned.signal(signal.SIGKILL)
        if cgroup:
            await asyncio.to_thread(cgroup.kill_pids)
        with contextlib.suppress(TimeoutError, BoxError):
            await asyncio.wait_for(asyncio.shield(spawned.exited), DRAIN_S)


async def _exited(spawned: Spawned) -> int | str:
    """The command's exit code (negative: the signal), or why there is none (bounded wait)."""
    try:
        return await asyncio.wait_for(asyncio.shield(spawned.exited), DRAIN_S)
    except BoxError as error:
        return f"{error}; it is restarted for your next command"
    except TimeoutError:
        return "the sandbox did not report the command's end"
