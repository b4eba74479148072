"""Per-agent and per-command cgroups: CPU shares, memory and process-count limits, where the machine lets us.

rlimits cannot do these two well: RLIMIT_AS breaks programs that reserve address space (torch,
CUDA), and RLIMIT_NPROC counts per user id, which inside bubblewrap run as root is uid 0, exempt
from it. A cgroup counts the whole process tree instead, and tells afterwards whether the
OOM killer fired or a fork was refused. Both cgroup v2 (one unified hierarchy whose subtree
control can enable memory and pids) and cgroup v1 (separate memory and pids hierarchies) are
supported; `CgroupRoot.detect` returns None where neither is writable and the caller falls back to
rlimits.

Each agent's box (its long-lived sandbox, see `box`) also gets a cgroup with the same CPU weight as
every other agent's (cgroup v2 `cpu.weight`, v1 `cpu.shares`) where the cpu controller can be
used, so an agent running many busy processes gets no more CPU than one running a single one
while both want CPU. Its owner may change that weight while the box runs (`Sandbox.set_cpu_weight`:
the PGR server lowers an old submission's runs, servers.pgr.cpu_ageing). Layout under this
service's cgroup (v2; under v1 the agent's cgroup lives in the cpu hierarchy alone and command
cgroups stay flat in the memory and pids hierarchies):
    agent-NAME/          cpu.weight, no processes of its own
        init/            the box: bubblewrap and the init inside
        run-N/           one command: memory.max, pids.max
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "aar-sandbox-"
CPU_WEIGHT = 100
"""cgroup v2 cpu.weight of every agent (the default; written so that each agent's is equal by intent)."""
CPU_SHARES = 1024
"""cgroup v1 cpu.shares of every agent: the same weight on v1's scale."""
MAX_CPU_WEIGHT = 10000
_instances = itertools.count(1)
_MOUNTINFO = Path("/proc/self/mountinfo")
_SELF_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CgroupRoot:
    """Where this service makes its per-command cgroups: one directory per hierarchy, and the version."""

    version: int
    memory_dir: Path
    pids_dir: Path
    cpu_dir: Path | None = None
    """Where agent cgroups get their CPU weight; None where no cpu controller could be used."""

    @classmethod
    def detect(cls, cpu_weight: int = CPU_WEIGHT) -> CgroupRoot | None:
        """Make this service's cgroup under the process's own cgroups, or return None where impossible.

        `cpu_weight` (cgroup v2's scale, 100 = the default) is the whole service's share of the CPU
        beside its sibling services while they all want it: the PGR server's scoring yields to the
        sandbox's agents with a lower one.
        """
        name = f"{PREFIX}{os.getpid()}-{next(_instances)}"
        try:
            mounts = _cgroup_mounts()
            own = _own_cgroups()
            if "" in mounts and "" in own and not ("memory" in mounts and "pids" in mounts):
                return cls._detect_v2(mounts[""] / own[""].lstrip("/") / name, cpu_weight)
            if "memory" in mounts and "pids" in mounts and "memory" in own and "pids" in own:
                cpu = mounts["cpu"] / own["cpu"].lstrip("/") / name if "cpu" in mounts and "cpu" in own else None
                return cls._detect_v1(
                    mounts["memory"] / own["memory"].lstrip("/") / name,
                    mounts["pids"] / own["pids"].lstrip("/") / name,
                    cpu,
                    cpu_weight,
                )
        except OSError as error:
            logger.info("cgroups unusable (%s); memory and process limits fall back to rlimits", error)
            return None
        logger.info("no writable memory and pids cgroups found; memory and process limits fall back to rlimits")
        return None

    @classmethod
    def _detect_v2(cls, directory: Path, cpu_weight: int) -> CgroupRoot | None:
        parent = directory.parent
        _sweep_stale(parent)
        available = (parent / "cgroup.controllers").read_text().split()
        if not {"memory", "pids"} <= set(available):
            logger.info("cgroup v2 at %s lacks the memory or pids controller", parent)
            return None
        controllers = "+memory +pids +cpu" if "cpu" in available else "+memory +pids"
        if "cpu" not in available:
            logger.info("cgroup v2 at %s lacks the cpu controller: agents get no CPU share of their own", parent)
        (parent / "cgroup.subtree_control").write_text(controllers)
        directory.mkdir()
        (directory / "cgroup.subtree_control").write_text(controllers)
        if "cpu" in available:
            write_cpu_weight(directory, 2, cpu_weight)
        return cls(2, directory, directory, directory if "cpu" in available else None)

    @classmethod
    def _detect_v1(cls, memory_dir: Path, pids_dir: Path, cpu_dir: Path | None, cpu_weight: int) -> CgroupRoot | None:
        _sweep_stale(memory_dir.parent)
        _sweep_stale(pids_dir.parent)
        memory_dir.mkdir()
        pids_dir.mkdir()
        if cpu_dir is not None:
            _sweep_stale(cpu_dir.parent)
            try:
                cpu_dir.mkdir()
                write_cpu_weight(cpu_dir, 1, cpu_weight)
            except OSError as error:
                logger.info("cpu cgroup %s unusable (%s): agents get no CPU share of their own", cpu_dir, error)
                cpu_dir = None
        return cls(1, memory_dir, pids_dir, cpu_dir)

    def remove(self) -> None:
        """Remove this service's cgroup directories (empty once every command has ended)."""
        for directory in dict.fromkeys((self.memory_dir, self.pids_dir, self.cpu_dir)):
            if directory is None:
                continue
            try:
                directory.rmdir()
            except OSError as error:
                logger.warning("cannot remove cgroup %s: %s", directory, error)

    def create_agent(self, agent: str) -> AgentCgroup:
        """The cgroup of one agent's box, with the CPU weight every agent gets."""
        if self.version == 2:
            directory = self.memory_dir / f"agent-{agent}"
            directory.mkdir(exist_ok=True)
            cpu = directory if self.cpu_dir is not None else None
            if cpu is not None:
                write_cpu_weight(cpu, 2, CPU_WEIGHT)
            (directory / "cgroup.subtree_control").write_text(
                "+memory +pids +cpu" if cpu is not None else "+memory +pids"
            )
            (directory / "init").mkdir(exist_ok=True)
            init = directory / "init"
            return AgentCgroup((init,), (init,), directory, (init, directory), cpu, 2)
        home = tuple(dict.fromkeys((self.memory_dir, self.pids_dir)))
        if self.cpu_dir is None:
            return AgentCgroup(home, home, None, (), None, 1)
        directory = self.cpu_dir / f"agent-{agent}"
        directory.mkdir(exist_ok=True)
        write_cpu_weight(directory, 1, CPU_WEIGHT)
        return AgentCgroup((directory, *home), home, None, (directory,), directory, 1)

    def create(self, name: str, memory_bytes: int, max_pids: int, agent: AgentCgroup | None = None) -> Cgroup:
        """A fresh cgroup for one command (under its agent's where the hierarchy nests), its limits set."""
        if agent is not None and agent.runs is not None:
            group = Cgroup(self.version, agent.runs / name, agent.runs / name)
        else:
            group = Cgroup(self.version, self.memory_dir / name, self.pids_dir / name)
        for directory in group.dirs:
            directory.mkdir()
        if self.version == 2:
            _write(group.memory / "memory.max", memory_bytes)
            _write(group.memory / "memory.swap.max", 0, optional=True)
            _write(group.pids / "pids.max", max_pids)
        else:
            _write(group.memory / "memory.limit_in_bytes", memory_bytes)
            _write(group.memory / "memory.memsw.limit_in_bytes", memory_bytes, optional=True)
            _write(group.pids / "pids.max", max_pids)
        return group


@dataclass(frozen=True)
class AgentCgroup:
    """Where one agent's box runs: the cgroups its launcher joins, the ones its init returns to after
    stepping into a command's cgroup to spawn it, where command cgroups go (v2 only), what is
    removed with the box (innermost first), and the cgroup that holds its CPU weight (None: no cpu
    controller)."""

    joins: tuple[Path, ...]
    home: tuple[Path, ...]
    runs: Path | None
    owned: tuple[Path, ...]
    cpu: Path | None
    version: int

    def set_cpu_weight(self, weight: int) -> None:
        """Weigh everything the box runs against the other boxes (CPU_WEIGHT is every box's at start)."""
        if self.cpu is not None:
            write_cpu_weight(self.cpu, self.version, weight)

    @property
    def join_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.joins]

    @property
    def home_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.home]

    def kill_and_remove(self) -> None:
        """Kill what is left of the box, then remove the agent's cgroups (its commands' are gone by now)."""
        for directory in self.owned:
            Cgroup(1, directory, directory).kill_and_remove()


@dataclass(frozen=True)
class Cgroup:
    """One command's cgroup (two directories under v1, the same one twice under v2)."""

    version: int
    memory: Path
    pids: Path

    @property
    def dirs(self) -> tuple[Path, ...]:
        return (self.memory,) if self.memory == self.pids else (self.memory, self.pids)

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid to in order to join (the spawn wrapper does this)."""
        return [str(directory / "cgroup.procs") for directory in self.dirs]

    def oom_killed(self) -> bool:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _counter(self.memory / name, "oom_kill") > 0

    def pids_refused(self) -> bool:
        return _counter(self.pids / "pids.events", "max") > 0

    def kill_pids(self, timeout_s: float = 5.0) -> None:
        """SIGKILL whatever is inside until nothing is (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        for directory in self.dirs:
            while True:
                pids = _read_pids(directory)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if time.monotonic() > deadline:
                    logger.warning("processes %s survive in %s", pids, directory)
                    break
                time.sleep(0.01)

    def kill_and_remove(self, timeout_s: float = 5.0) -> None:
        """SIGKILL whatever is left inside, then remove the cgroup directories."""
        self.kill_pids(timeout_s)
        for directory in self.dirs:
            try:
                directory.rmdir()
            except OSError as error:
                logger.warning("cannot remove cgroup %s: %s", directory, error)


def _sweep_stale(parent: Path) -> None:
    """Remove cgroups left by services that died (named after their pid, which no longer exists)."""
    for stale in parent.glob(f"{PREFIX}*"):
        pid = stale.name[len(PREFIX) :].split("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        for directory in [*stale.glob("agent-*/*"), *stale.glob("agent-*"), *stale.glob("run-*"), stale]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def write_cpu_weight(directory: Path, version: int, weight: int) -> None:
    """Give a cgroup `weight` on cgroup v2's scale (1-10000, CPU_WEIGHT = the default), or the same on v1's."""
    if not 1 <= weight <= MAX_CPU_WEIGHT:
        raise ValueError(f"a CPU weight is 1-{MAX_CPU_WEIGHT}, not {weight}")
    if version == 2:
        _write(directory / "cpu.weight", weight)
    else:
        _write(directory / "cpu.shares", max(2, weight * CPU_SHARES // CPU_WEIGHT))


def _write(path: Path, value: int, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_pids(directory: Path) -> list[int]:
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _cgroup_mounts() -> dict[str, Path]:
    """Mount point per v1 controller name, and '' for the v2 hierarchy (only mounts of their root)."""
    mounts: dict[str, Path] = {}
    for line in _MOUNTINFO.read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        root, mount_point = fields[3], fields[4]
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        if root != "/":
            continue
        if fstype == "cgroup2":
            mounts.setdefault("", Path(mount_point))
        elif fstype == "cgroup":
            for option in options:
                if option in ("memory", "pids", "cpu"):
                    mounts.setdefault(option, Path(mount_point))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and '' for v2."""
    own: dict[str, str] = {}
    for line in _SELF_CGROUP.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            own[""] = path
        for controller in controllers.split(","):
            if controller in ("memory", "pids", "cpu"):
                own[controller] = path
    return own
