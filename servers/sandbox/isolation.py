"""How an agent's box is started and what each command in it gets: argv, environment, rlimits.

A box (see `box`) is started once per agent, in layers, outermost first:
1. `sh` writes its own pid into the agent's cgroup (CPU share) and execs on;
2. `bwrap` builds fresh user, PID, network, IPC, UTS and cgroup namespaces, drops every
   capability, maps a non-root uid, mounts the read-only view, the workspace at /workspace and a
   size-capped /tmp, and runs the init (`boxinit`) there as PID 1.
The chain starts with an empty environment: bwrap's memory and the init's hold none of the
server's variables. Each command is then forked by the init with the environment, working
directory and rlimits (CPU time, file size, no core dumps; address space and process count too
where no cgroup can limit memory and processes) that `command` describes here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path

from servers.sandbox import boxinit
from servers.sandbox.cgroups import Cgroup
from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import IsolationUnavailableError
from servers.sandbox.gpu import GpuPool
from servers.sandbox.limits import MIB
from servers.sandbox.readonly_view import exposed_sources, view_args

logger = logging.getLogger(__name__)

WORKSPACE = "/workspace"
API_DIR = "/opt/aar/api"
USER = "agent"
INIT_SOURCE = Path(boxinit.__file__)
INIT_PATH = "/opt/aar/init/boxinit.py"
_JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'
FIX_HINT = (
    "install bubblewrap (apt-get install bubblewrap) and enable user namespaces "
    "(sysctl user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
    "kernel.apparmor_restrict_unprivileged_userns=0), or for development only construct the service "
    "with unsafe_no_isolation=True"
)


@dataclass(frozen=True)
class Launch:
    """What to spawn for one agent's box: argv, working directory, environment, descriptors to pass."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    owned_fds: tuple[int, ...]
    """Descriptors made for this launch; the spawner closes them once the child has them."""
    binds: tuple[str, ...]
    """The optional read-only binds present at launch (a box whose binds changed is restarted when idle)."""


@dataclass(frozen=True)
class CommandSpec:
    """What the init spawns for one command (`boxinit` reads it): the init sets the rlimits on itself, so
    that the command inherits them, except that its own hard RLIMIT_CPU stays at `cpu_ceiling` (the
    most any command or job gets; it cannot be raised again) until it has set the command's own."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    rlimits: list[tuple[int, int, int]]
    merge: bool
    cpu_ceiling: int


class Isolation:
    """Builds command lines for one service; `unsafe` runs commands without bubblewrap (warns each time)."""

    def __init__(self, config: SandboxConfig, gpus: GpuPool, *, unsafe: bool) -> None:
        self._config = config
        self._gpus = gpus
        self.unsafe = unsafe
        self._sh = _which("sh", "it is part of every Linux base system")
        self._bwrap = None if unsafe else _which(config.bwrap, FIX_HINT)
        self._python = _python(config.python_paths)
        self._etc = self._write_etc()
        self._view = view_args((*config.system_paths, *config.extra_ro_paths), config.hidden_paths) + view_args(
            config.python_paths, config.installed_packages
        )
        self._check_view()

    async def probe(self) -> None:
        """Run `true` in a full sandbox; raise IsolationUnavailableError saying why and how to fix it."""
        if self.unsafe:
            logger.warning("UNSAFE: sandbox isolation is OFF (unsafe_no_isolation=True); commands run as the server")
            return
        probe_dir = self._config.root / "probe"
        probe_dir.mkdir(parents=True, exist_ok=True)
        assert self._bwrap is not None  # found at start whenever isolation is on
        argv = [self._bwrap, *self._bwrap_args(probe_dir), "--", "/bin/true"]
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            why = output.decode(errors="replace").strip() or f"exit status {process.returncode}"
            raise IsolationUnavailableError(f"bubblewrap cannot build a sandbox here ({why}); {FIX_HINT}")

    def box(self, workspace: Path, control_fd: int, join: list[str]) -> Launch:
        """The argv starting an agent's box over `workspace`, its init talking on `control_fd`.

        `join` names cgroup.procs files the box joins before bubblewrap (the agent's CPU share)."""
        prefix = [self._sh, "-c", _JOIN_CGROUPS, "sh", str(len(join)), *join] if join else []
        init = [self._python, "-I", "-S", "-B"]
        binds = self.optional_binds()
        if self.unsafe:
            logger.warning("UNSAFE: the box of %s runs unisolated (unsafe_no_isolation=True)", workspace)
            argv = [*prefix, *init, str(INIT_SOURCE), str(control_fd)]
            return Launch(argv, str(workspace), {}, (control_fd,), (), binds)
        assert self._bwrap is not None  # found at start whenever isolation is on
        args_fd = _memfd("\0".join([*self._bwrap_args(workspace), "--as-pid-1", ""]))
        bwrap = [self._bwrap, "--args", str(args_fd), "--", *init, INIT_PATH, str(control_fd)]
        return Launch([*prefix, *bwrap], "/", {}, (control_fd, args_fd), (args_fd,), binds)

    def check_gpus(self, count: int) -> None:
        """Refuse a job asking for more GPUs than this sandbox has (servers.sandbox.gpu.GpuPool.check)."""
        self._gpus.check(count)

    def command(
        self, workspace: Path, command: str, *, cpu_s: int, cgroup: Cgroup | None, gpus: int | None = None
    ) -> CommandSpec:
        """What the init runs for `command`: bash in /workspace with the configured limits and `gpus` GPUs
        (None: one, where there are any)."""
        limits = self._config.limits
        rlimits = [
            (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
            (resource.RLIMIT_FSIZE, limits.file_size_mib * MIB, limits.file_size_mib * MIB),
            (resource.RLIMIT_CORE, 0, 0),
        ]
        if cgroup is None:
            memory, processes = limits.memory_mib * MIB, limits.max_processes
            rlimits += [(resource.RLIMIT_AS, memory, memory), (resource.RLIMIT_NPROC, processes, processes)]
        if self.unsafe:
            logger.warning("UNSAFE: running a command WITHOUT isolation (unsafe_no_isolation=True): %.200s", command)
        home = str(workspace) if self.unsafe else WORKSPACE
        env = self._env(self._gpus.assign(gpus), home=home)
        ceiling = max(limits.exec_cpu_s, limits.job_cpu_s) + 1
        return CommandSpec(["/bin/bash", "-c", command], env, home, rlimits, merge=False, cpu_ceiling=ceiling)

    def optional_binds(self) -> tuple[str, ...]:
        """The API sources and mounts that exist now (they may appear while the service runs)."""
        return tuple(self._api_binds() + self._mount_binds())

    def _bwrap_args(self, workspace: Path) -> list[str]:
        config = self._config
        uid = str(config.sandbox_uid)
        tmp_bytes = str(config.limits.tmp_mib * MIB)
        return [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            uid,
            "--gid",
            uid,
            "--hostname",
            "sandbox",
            # The private /tmp first: mounted after the view, it would hide a venv or project under /tmp.
            "--perms",
            "1777",
            "--size",
            tmp_bytes,
            "--tmpfs",
            "/tmp",  # noqa: S108 a fresh tmpfs inside the box's own mount namespace
            *self._view,
            *self._api_binds(),
            *self._mount_binds(),
            "--ro-bind",
            str(INIT_SOURCE),
            INIT_PATH,
            "--ro-bind",
            str(self._etc / "passwd"),
            "/etc/passwd",
            "--ro-bind",
            str(self._etc / "group"),
            "/etc/group",
            "--ro-bind",
            str(self._etc / "hosts"),
            "/etc/hosts",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            tmp_bytes,
            "--tmpfs",
            "/dev/shm",  # noqa: S108 a fresh tmpfs inside the box's own mount namespace
            *self._gpus.bind_args(),
            "--bind",
            str(workspace),
            WORKSPACE,
            "--remount-ro",
            "/",
            "--chdir",
            WORKSPACE,
        ]

    def _env(self, gpu: str | None, home: str) -> dict[str, str]:
        bins = [f"{path}/bin" for path in reversed(self._config.python_paths)]
        return {
            "PATH": ":".join([*bins, "/usr/bin", "/bin"]),
            "HOME": home,
            "USER": USER,
            "LOGNAME": USER,
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",  # noqa: S108 the box's private tmpfs
            "PYTHONPATH": API_DIR,
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "CUDA_VISIBLE_DEVICES": gpu if gpu is not None else "",
        }

    def _api_binds(self) -> list[str]:
        """Bind each method-API source that exists now (they may appear while the service runs)."""
        args: list[str] = []
        for relative in self._config.api_sources:
            source = self._config.project_root / relative
            if source.exists():
                args += ["--ro-bind", str(source), f"{API_DIR}/{relative}"]
        return args

    def _mount_binds(self) -> list[str]:
        """Bind each configured read-only mount whose source exists now."""
        args: list[str] = []
        for source, target in self._config.mounts:
            if Path(source).exists():
                args += ["--ro-bind", source, target]
        return args

    def _write_etc(self) -> Path:
        """passwd, group and hosts naming only the sandbox user, instead of the host's files."""
        etc = self._config.root / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        uid = self._config.sandbox_uid
        (etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/bash\n{USER}:x:{uid}:{uid}:{USER}:{WORKSPACE}:/bin/bash\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n"
        )
        (etc / "group").write_text(f"root:x:0:\n{USER}:x:{uid}:\nnogroup:x:65534:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n")
        return etc

    def _check_view(self) -> None:
        """Refuse a view that would expose the data directory or the project (task packs live there)."""
        if self.unsafe:
            return
        private = self._config.private_paths
        for source in exposed_sources(self._view):
            real = Path(source).resolve()
            for secret in private:
                if secret.resolve().is_relative_to(real):
                    raise IsolationUnavailableError(
                        f"the sandbox view exposes {source}, which contains private {secret}; "
                        "remove it from the configured paths"
                    )


def _memfd(content: str) -> int:
    """An anonymous file holding `content`, read from the start (bwrap reads its arguments from it,
    which keeps host paths out of /proc/1/cmdline inside the sandbox)."""
    fd = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
    os.write(fd, content.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _python(prefixes: tuple[str, ...]) -> str:
    """A Python the view exposes, to run the init with (the server's own where it is in the view)."""
    for prefix in prefixes:
        for name in ("python3", "python"):
            candidate = f"{prefix}/bin/{name}"
            if os.access(candidate, os.X_OK):
                return candidate
    return _which("python3", "install Python 3")


def _which(name: str, hint: str) -> str:
    found = shutil.which(name, path=os.defpath + ":/usr/sbin:/sbin") if not os.path.isabs(name) else name
    if not found or not os.access(found, os.X_OK):
        raise IsolationUnavailableError(f"{name} is not installed; {hint}")
    return found
