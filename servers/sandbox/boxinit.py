"""The init of an agent's box: PID 1 inside its bubblewrap sandbox, starting each command on request.

Run by `box.Box` as `python -I -S boxinit.py FD` (standard library only, empty environment), with
FD one end of a SOCK_SEQPACKET socket pair whose other end the server keeps. It imports only
built-in modules (not json, socket, signal, enum or ctypes: they would double its start, which every new
agent's first command waits for). Requests, one `marshal`-ed packet each from the trusted server,
with descriptors attached:
  {"op": "run", "id": N, "cgroups": K}
      fds: [spec memfd, stdout, stderr (stdout again if merged), K command cgroup.procs, the init's own]
      spec: {"argv", "env", "cwd", "rlimits": [[resource, soft, hard], ...], "merge": bool}
  {"op": "signal", "id": N, "signal": S}   the command's whole process group
Replies, JSON: {"ready": true} once, then per command {"id": N, "exit": CODE} (negative: killed by
that signal) or {"id": N, "error": TEXT}.

Why it is safe with hostile commands beside it: it runs with no capabilities as the same uid as the
commands, but is made non-dumpable (no ptrace, no /proc/1/fd, /proc/1/mem or /proc/1/environ for
them), installs no signal handler (the kernel drops every signal, SIGKILL included, sent to a
namespace's init from inside), and every descriptor it holds is close-on-exec, so no command holds
its socket. Each command is spawned in its own session and process group, already inside its
cgroups and rlimits (see `Init.run`); when it exits its process group is killed, and when no
command is left every other process in the namespace (a daemon that left the group) is killed too.
"""

from __future__ import annotations

import _ctypes
import _signal  # type: ignore[import-not-found]  # a C module without a stub; `signal` costs more to import
import _socket
import marshal
import os
import resource
import select
import sys

PR_SET_DUMPABLE = 4
MAX_PACKET = 4096
MAX_FDS = 8
FD_BYTES = 4
"""A descriptor in an SCM_RIGHTS message is a C int."""
REAP_EVERY_S = 0.5
RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT)
"""Signals Python ignores or handles; a command starts with their default action."""


class Init:
    def __init__(self, control: _socket.socket) -> None:
        self.control = control
        self.running: dict[int, tuple[int, int]] = {}
        """pid -> (request id, pidfd)"""

    def serve(self) -> None:
        while True:
            pidfds = {pidfd: pid for pid, (_, pidfd) in self.running.items()}
            watched: list[_socket.socket | int] = [self.control, *pidfds]
            ready, _, _ = select.select(watched, [], [], REAP_EVERY_S)
            if self.control in ready and not self.receive():
                return
            self.reap()

    def receive(self) -> bool:
        """Handle one request; False once the server has gone (then the namespace ends with us)."""
        try:
            data, ancillary, _, _ = self.control.recvmsg(
                MAX_PACKET, _socket.CMSG_LEN(MAX_FDS * FD_BYTES), _socket.MSG_CMSG_CLOEXEC
            )
        except ConnectionError:
            return False
        fds = [
            int.from_bytes(payload[at : at + FD_BYTES], sys.byteorder)
            for level, kind, payload in ancillary
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for at in range(0, len(payload) - FD_BYTES + 1, FD_BYTES)
        ]
        if not data:
            return False
        try:
            request = marshal.loads(data)  # noqa: S302 written by the sandbox server, the box's only peer
            if request["op"] == "run":
                self.run(request["id"], fds, request["cgroups"])
            elif request["op"] == "signal":
                self.signal(request["id"], int(request["signal"]))
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def run(self, request_id: int, fds: list[int], cgroups: int) -> None:
        """Spawn a command inside its limits from its first instruction.

        posix_spawn (vfork) costs a fraction of fork+exec from Python, but cannot set up the child; so
        the init takes on what the command must inherit: its rlimits and, for the moment of the spawn,
        its cgroups (it steps in, spawns, steps back home). One exception: RLIMIT_CPU differs between
        commands and jobs, and the init cannot raise its own hard limit again, so the command inherits
        its soft CPU limit and the init's hard one (`cpu_ceiling`, the jobs' limit) and gets its own
        hard limit right after the spawn. Only a process it forks in that instant keeps the ceiling,
        under the command's wall-clock limit all the same."""
        spec_fd, stdout, stderr, *cgroup_fds = fds
        run_cgroups, home_cgroups = cgroup_fds[:cgroups], cgroup_fds[cgroups:]
        spec_bytes = os.pread(spec_fd, os.fstat(spec_fd).st_size, 0)
        spec = marshal.loads(spec_bytes)  # noqa: S302 the server's own spec, in a memfd it made
        cpu = [limit for limit in spec["rlimits"] if limit[0] == resource.RLIMIT_CPU]
        try:
            for number, soft, hard in spec["rlimits"]:
                if number == resource.RLIMIT_CPU:
                    _cap_own_cpu(soft, spec["cpu_ceiling"])
                else:
                    resource.setrlimit(number, (soft, hard))
            os.chdir(spec["cwd"])
            for fd in run_cgroups:
                os.write(fd, b"0")  # "0": the writer itself
        except OSError as error:
            self.reply(request_id, "error", f"cannot apply the command's limits: {error}")
            _go_home(home_cgroups)
            return
        try:
            pid = os.posix_spawn(
                spec["argv"][0],
                spec["argv"],
                spec["env"],
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, stdout, 1),
                    (os.POSIX_SPAWN_DUP2, stdout if spec["merge"] else stderr, 2),
                ],
                setsid=True,
                setsigdef=RESET_SIGNALS,
            )
        except OSError as error:
            self.reply(request_id, "error", f"cannot start the command: {error}")
            return
        finally:
            _go_home(home_cgroups)
            _cap_own_cpu(None, spec["cpu_ceiling"])
        self.running[pid] = (request_id, os.pidfd_open(pid))
        try:
            for number, soft, hard in cpu:
                resource.prlimit(pid, number, (soft, hard))
        except OSError as error:
            _kill_group(pid, _signal.SIGKILL)
            self.reply(request_id, "error", f"cannot apply the command's limits: {error}")

    def signal(self, request_id: int, signum: int) -> None:
        for pid, (known, _) in self.running.items():
            if known == request_id:
                _kill_group(pid, signum)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            entry = self.running.pop(pid, None)
            if entry is None:
                continue  # an orphan of some command, reparented to us
            request_id, pidfd = entry
            os.close(pidfd)
            _kill_group(pid, _signal.SIGKILL)
            if not self.running and os.getpid() == 1:
                _kill_everyone_else()
            self.reply(request_id, "exit", os.waitstatus_to_exitcode(status))

    def reply(self, request_id: int, key: str, value: int | str) -> None:
        """{"id": request_id, key: value} as JSON (an int, or a string kept to printable ASCII)."""
        if isinstance(value, str):
            text = "".join(ch for ch in value if " " <= ch <= "~" and ch not in '"\\')
            value = f'"{text}"'
        self.control.send(f'{{"id": {request_id}, "{key}": {value}}}'.encode())


def _cap_own_cpu(soft: int | None, ceiling: int) -> None:
    """The init's own CPU limit: hard at `ceiling`; soft at `soft` for a spawn (never below what the init
    has used, or the kernel would kill it), else at the ceiling."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    floor = int(used.ru_utime + used.ru_stime) + 60
    wanted = ceiling if soft is None else min(max(soft, floor), ceiling)
    resource.setrlimit(resource.RLIMIT_CPU, (wanted, ceiling))


def _go_home(home_cgroups: list[int]) -> None:
    """Back to the init's own cgroups; an init stuck in a command's would be killed with it, so it exits."""
    try:
        for fd in home_cgroups:
            os.write(fd, b"0")
    except OSError as error:
        raise SystemExit(f"boxinit: cannot return to its own cgroup ({error}); the box will be restarted") from None


def _kill_group(pid: int, signum: int) -> None:
    with _SuppressOSError():
        os.killpg(pid, signum)


def _kill_everyone_else() -> None:
    """With no command running, whatever else lives in the namespace is a leftover daemon: kill it."""
    for name in os.listdir("/proc"):
        if name.isdigit() and name != "1":
            with _SuppressOSError():
                os.kill(int(name), _signal.SIGKILL)


class _SuppressOSError:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


def _prctl() -> _ctypes.CFuncPtr:
    """libc's prctl through _ctypes alone (the ctypes package costs more to import than the rest of the init)."""

    class Int(_ctypes._SimpleCData):  # type: ignore[type-arg]  # generic only in the stubs, not at run time
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Int

    class Libc:
        _handle = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # None (the process itself) is valid

    return Function(("prctl", Libc()))  # type: ignore[arg-type]  # any object with a _handle serves as the library


def main() -> None:
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # no handler at all: commands cannot signal PID 1
    if _prctl()(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit("boxinit: prctl(PR_SET_DUMPABLE, 0) failed; refusing to serve commands")
    control = _socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(control.fileno(), False)
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2:
            with _SuppressOSError():
                os.set_inheritable(int(name), False)  # what bubblewrap left open stays out of commands
    control.send(b'{"ready": true}')
    Init(control).serve()


if __name__ == "__main__":
    main()
