"""The argv that runs one command isolated: cgroup join, rlimits, then bubblewrap.

Layers, outermost first:
1. `sh` writes its own pid into the command's cgroup(s) and execs on (so every descendant is
   counted from the first instruction; a preexec_fn would run in a threaded server);
2. `prlimit` sets per-process rlimits (CPU time, file size, no core dumps; address space and
   process count too where no cgroup can limit memory and processes);
3. `bwrap` builds fresh user, PID, network, IPC, UTS and cgroup namespaces, drops every
   capability, maps a non-root uid, mounts the read-only view, the workspace at /workspace and a
   size-capped /tmp, and runs `bash -c COMMAND` there.
The whole chain is started with an empty environment: bwrap's own memory (which its pid-1 child
inherits and /proc/1/environ shows inside) then holds none of the server's variables, and the
command gets only the variables set here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from servers.sandbox.cgroups import Cgroup
from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import IsolationUnavailableError
from servers.sandbox.gpu import GpuPool
from servers.sandbox.limits import MIB
from servers.sandbox.view import exposed_sources, view_args

logger = logging.getLogger(__name__)

WORKSPACE = "/workspace"
API_DIR = "/opt/aar/api"
USER = "agent"
_JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'
FIX_HINT = (
    "install bubblewrap (apt-get install bubblewrap) and enable user namespaces "
    "(sysctl user.max_user_namespaces=15000 kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 also "
    "kernel.apparmor_restrict_unprivileged_userns=0), or for development only construct the service "
    "with unsafe_no_isolation=True"
)


@dataclass(frozen=True)
class Launch:
    """What to spawn for one command: argv, working directory, and the fd bwrap reports status on."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    owned_fds: tuple[int, ...]
    """Descriptors made for this launch; the spawner closes them once the child has them."""
    supervisors: int
    """How many levels of the process tree below the spawned pid are sandbox plumbing (bwrap)."""


class Isolation:
    """Builds command lines for one service; `unsafe` runs commands without bubblewrap (warns each time)."""

    def __init__(self, config: SandboxConfig, gpus: GpuPool, *, unsafe: bool) -> None:
        self._config = config
        self._gpus = gpus
        self.unsafe = unsafe
        self._sh = _which("sh", "it is part of every Linux base system")
        self._prlimit = _which("prlimit", "install util-linux")
        self._bwrap = None if unsafe else _which(config.bwrap, FIX_HINT)
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
        argv = [self._bwrap, *self._bwrap_args(probe_dir, None), "--", "/bin/true"]
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

    def launch(self, workspace: Path, command: str, *, cpu_s: int, cgroup: Cgroup | None, status_fd: int) -> Launch:
        """The argv running `command` in `workspace` with the configured limits."""
        gpu = self._gpus.assign()
        limits = self._config.limits
        prlimit = [
            self._prlimit,
            f"--cpu={cpu_s}:{cpu_s + 1}",
            f"--fsize={limits.file_size_mib * MIB}",
            "--core=0",
        ]
        if cgroup is None:
            prlimit += [f"--as={limits.memory_mib * MIB}", f"--nproc={limits.max_processes}"]
        prlimit.append("--")
        join = (
            [self._sh, "-c", _JOIN_CGROUPS, "sh", str(len(cgroup.procs_files)), *cgroup.procs_files] if cgroup else []
        )
        if self.unsafe:
            logger.warning("UNSAFE: running a command WITHOUT isolation (unsafe_no_isolation=True): %.200s", command)
            env = self._env(gpu, home=str(workspace))
            return Launch([*join, *prlimit, "/bin/bash", "-c", command], str(workspace), env, (), (), 0)
        args_fd = _memfd("\0".join(["--json-status-fd", str(status_fd), *self._bwrap_args(workspace, gpu), ""]))
        bwrap = [self._bwrap, "--args", str(args_fd), "--", "/bin/bash", "-c", command]
        return Launch([*join, *prlimit, *bwrap], "/", {}, (status_fd, args_fd), (args_fd,), 2)

    def _bwrap_args(self, workspace: Path, gpu: str | None) -> list[str]:
        config = self._config
        uid = str(config.sandbox_uid)
        tmp_bytes = str(config.limits.tmp_mib * MIB)
        args = [
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
            "/tmp",
            *self._view,
            *self._api_binds(),
            *self._mount_binds(),
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
            "/dev/shm",
            *self._gpus.bind_args(),
            "--bind",
            str(workspace),
            WORKSPACE,
            "--remount-ro",
            "/",
            "--chdir",
            WORKSPACE,
        ]
        for key, value in self._env(gpu, home=WORKSPACE).items():
            args += ["--setenv", key, value]
        return args

    def _env(self, gpu: str | None, home: str) -> dict[str, str]:
        bins = [f"{path}/bin" for path in reversed(self._config.python_paths)]
        return {
            "PATH": ":".join([*bins, "/usr/bin", "/bin"]),
            "HOME": home,
            "USER": USER,
            "LOGNAME": USER,
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
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


def _which(name: str, hint: str) -> str:
    found = shutil.which(name, path=os.defpath + ":/usr/sbin:/sbin") if not os.path.isabs(name) else name
    if not found or not os.access(found, os.X_OK):
        raise IsolationUnavailableError(f"{name} is not installed; {hint}")
    return found
