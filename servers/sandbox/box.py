"""Each agent's long-lived sandbox (its box): bubblewrap started once, an init inside spawning each command.

Building namespaces and ~45 mounts costs bubblewrap tens of milliseconds, so doing it per command
made every `exec` cost that much. A box is started on an agent's first command or job and serves
all of them: the server sends the init (`boxinit`, PID 1 inside) a request per command over a
socket pair, with the command's output pipes and cgroup files attached, and hears back when it
exits. Per command stay: a fresh environment and working directory, its own session and process
group, its rlimits and its own memory and pids cgroup, bounded output, and the kill of everything
it left behind when it ends. Shared by one agent's commands now: /tmp and /dev/shm, and the PID
namespace (an agent's commands can see and signal each other, never another agent's, which lives
in another box). A box is restarted, with a log line, when it has died; stopped when idle for
`box_idle_s`, when its workspace is removed, and (once idle) when the read-only binds it started
with have changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import marshal
import os
import socket
import time
from pathlib import Path
from typing import Any, TypeVar

from servers.sandbox.cgroups import AgentCgroup, CgroupRoot
from servers.sandbox.isolation import CommandSpec, Isolation

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
MAX_REPLY = 4096


class BoxError(RuntimeError):
    """The box could not be started or stopped under a command; the message says why."""


class Box:
    """One agent's running box. Start with `await Box.start(...)`; `spawn` runs a command in it."""

    def __init__(
        self, agent: str, process: asyncio.subprocess.Process, control: socket.socket, cgroup: AgentCgroup | None
    ) -> None:
        self.agent = agent
        self.cgroup = cgroup
        self.binds: tuple[str, ...] = ()
        self.running = 0
        self.idle_since = time.monotonic()
        self._process = process
        self._control = control
        self._ids = itertools.count(1)
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = asyncio.create_task(self._watch_process(), name=f"sandbox-box-{agent}")
        asyncio.get_running_loop().add_reader(control.fileno(), self._receive)

    @classmethod
    async def start(cls, agent: str, workspace: Path, isolation: Isolation, cgroups: CgroupRoot | None) -> Box:
        """Start the box of `agent` over `workspace` and wait until its init answers."""
        cgroup = cgroups.create_agent(agent) if cgroups else None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        theirs.set_inheritable(True)
        launch = isolation.box(workspace, theirs.fileno(), cgroup.join_files if cgroup else [])
        try:
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                pass_fds=launch.pass_fds,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            if cgroup:
                await asyncio.to_thread(cgroup.kill_and_remove)
            raise
        finally:
            theirs.close()
            for fd in launch.owned_fds:
                os.close(fd)
        ours.setblocking(False)
        box = cls(agent, process, ours, cgroup)
        box.binds = launch.binds
        try:
            await asyncio.wait_for(asyncio.shield(box._ready), READY_TIMEOUT_S)
        except (TimeoutError, BoxError) as error:
            await box.stop()
            why = error or "no answer"
            raise BoxError(f"the sandbox of {agent} did not start ({why}); see the server log") from None
        logger.info("sandbox box of %s started (host pid %d)", agent, process.pid)
        return box

    @property
    def alive(self) -> bool:
        return not self._ended.done()

    @property
    def exit_status(self) -> int | None:
        return self._process.returncode

    def spawn(self, spec: CommandSpec, stdout: int, stderr: int | None, cgroup_files: list[str]) -> Spawned:
        """Ask the init to start `spec` with these output descriptors in these cgroups (`exited` says how it went).

        The init steps into the command's cgroups, spawns it there, and steps back to its own."""
        if not self.alive:
            raise BoxError("the sandbox stopped")
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        self._exits[request_id] = exited
        fds = [_memfd(marshal.dumps(dataclasses.asdict(spec))), stdout, stderr if stderr is not None else stdout]
        home = self.cgroup.home_files if self.cgroup and cgroup_files else []
        try:
            for path in (*cgroup_files, *home):
                fds.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
            header = {"op": "run", "id": request_id, "cgroups": len(cgroup_files)}
            socket.send_fds(self._control, [marshal.dumps(header)], fds)
        except OSError as error:
            self._exits.pop(request_id)
            raise BoxError(f"cannot reach the sandbox's init: {error.strerror}") from None
        finally:
            os.close(fds[0])
            for fd in fds[3:]:
                os.close(fd)
        self.running += 1
        exited.add_done_callback(lambda _: self._done())
        return Spawned(self, request_id, exited)

    def signal(self, request_id: int, signum: int) -> None:
        """Send `signum` to the process group of a command (nothing if it has ended or the box is gone)."""
        with contextlib.suppress(OSError):
            self._control.send(marshal.dumps({"op": "signal", "id": request_id, "signal": int(signum)}))

    async def stop(self) -> None:
        """End the box and everything in it: the init exits when its socket closes, taking the namespace."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(self._control.fileno())
        self._control.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
            await self._ended
        if self.cgroup:
            await asyncio.to_thread(self.cgroup.kill_and_remove)

    def _done(self) -> None:
        self.running -= 1
        self.idle_since = time.monotonic()

    def _receive(self) -> None:
        while True:
            try:
                data = self._control.recv(MAX_REPLY)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                asyncio.get_running_loop().remove_reader(self._control.fileno())
                return  # the init has gone; _watch_process fails what is pending
            message = json.loads(data)
            if message.get("ready"):
                _settle(self._ready, None)
                continue
            request_id = message.get("id")
            if "error" in message:
                _fail(self._exits.pop(request_id, None), BoxError(message["error"]))
            elif "exit" in message:
                _settle(self._exits.pop(request_id, None), int(message["exit"]))

    async def _watch_process(self) -> None:
        status = await self._process.wait()
        error = BoxError(f"the sandbox stopped (exit status {status})")
        _fail(self._ready, error)
        for future in self._exits.values():
            _fail(future, error)
        self._exits.clear()


@dataclasses.dataclass
class Spawned:
    """A command the init has forked: signal its process group, await its exit code."""

    box: Box
    request_id: int
    exited: asyncio.Future[int]

    def signal(self, signum: int) -> None:
        self.box.signal(self.request_id, signum)


class Boxes:
    """The boxes of one service, one per agent, started on demand and stopped when idle."""

    def __init__(self, isolation: Isolation, cgroups: CgroupRoot | None, idle_s: float) -> None:
        self._isolation = isolation
        self._cgroups = cgroups
        self._idle_s = idle_s
        self._boxes: dict[str, Box] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cpu_weights: dict[str, int] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def get(self, agent: str, workspace: Path) -> Box:
        """The agent's running box, started (or restarted) as needed."""
        async with self._locks.setdefault(agent, asyncio.Lock()):
            box = self._boxes.get(agent)
            if box is not None and not box.alive:
                logger.warning(
                    "the sandbox box of %s died (exit status %s); starting a new one", agent, box.exit_status
                )
                await box.stop()
                box = None
            elif box is not None and box.running == 0 and box.binds != self._isolation.optional_binds():
                logger.info("read-only binds changed; restarting the idle sandbox box of %s", agent)
                await box.stop()
                box = None
            if box is None:
                box = await Box.start(agent, workspace, self._isolation, self._cgroups)
                self._boxes[agent] = box
                if agent in self._cpu_weights and box.cgroup:
                    await asyncio.to_thread(box.cgroup.set_cpu_weight, self._cpu_weights[agent])
            box.idle_since = time.monotonic()  # not idle: a command is about to start
            if self._reaper is None:
                self._reaper = asyncio.create_task(self._stop_idle(), name="sandbox-box-reaper")
            return box

    async def set_cpu_weight(self, agent: str, weight: int) -> None:
        """Weigh the agent's box against the others from now on, across restarts (until `remove`)."""
        async with self._locks.setdefault(agent, asyncio.Lock()):
            self._cpu_weights[agent] = weight
            box = self._boxes.get(agent)
            if box is not None and box.cgroup:
                await asyncio.to_thread(box.cgroup.set_cpu_weight, weight)

    async def remove(self, agent: str) -> None:
        """Stop the agent's box for good (its workspace goes): a later one starts at every agent's weight."""
        await self.stop(agent)
        self._cpu_weights.pop(agent, None)

    async def stop(self, agent: str, *, idle_for_s: float | None = None) -> None:
        """Stop the agent's box, if any (before its workspace goes); with `idle_for_s`, only if it has run
        nothing for that long (checked under the agent's lock, so no command starting now is cut)."""
        async with self._locks.setdefault(agent, asyncio.Lock()):
            box = self._boxes.get(agent)
            if box is None:
                return
            if idle_for_s is not None and (box.running or time.monotonic() - box.idle_since <= idle_for_s):
                return
            if idle_for_s is not None:
                logger.info("stopping the idle sandbox box of %s", agent)
            del self._boxes[agent]
            await box.stop()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for agent in list(self._boxes):
            await self.stop(agent)

    def host_pid(self, agent: str) -> int | None:
        """The host pid of the agent's box launcher (for tests and the operator's diagnosis)."""
        box = self._boxes.get(agent)
        return box._process.pid if box else None

    async def _stop_idle(self) -> None:
        while True:
            await asyncio.sleep(max(self._idle_s / 4, 0.05))
            now = time.monotonic()
            for agent, box in list(self._boxes.items()):
                if box.running == 0 and now - box.idle_since > self._idle_s:
                    await self.stop(agent, idle_for_s=self._idle_s)


def _memfd(content: bytes) -> int:
    fd = os.memfd_create("sandbox-command", os.MFD_CLOEXEC)
    os.write(fd, content)
    return fd


T = TypeVar("T")


def _settle(future: asyncio.Future[T] | None, value: T) -> None:
    if future is not None and not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)
        future.exception()  # retrieved: nobody may be waiting on it any more
