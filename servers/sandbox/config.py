"""Where the sandbox keeps its state and what its commands may see: a frozen settings object.

Defaults describe this project on a Debian-like machine: system binaries and libraries from /usr
minus data a label could be rebuilt from, the Python runtime and virtualenv the server itself runs
on, and the method API modules of the project (nothing else of the project, which holds task packs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from servers.sandbox.cgroups import CPU_WEIGHT
from servers.sandbox.limits import SandboxLimits

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SYSTEM_PATHS = (
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libexec",
    "/usr/include",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
)
"""Binaries, libraries and headers (compilers serve torch.compile); the top-level names are links into /usr
on merged-/usr systems. /usr/local, /usr/src, /usr/games and most of /usr/share stay out."""

USR_SHARE_PATHS = (
    "/usr/share/zoneinfo",
    "/usr/share/terminfo",
    "/usr/share/locale",
    "/usr/share/i18n",
    "/usr/share/misc",
    "/usr/share/file",
    "/usr/share/mime",
    "/usr/share/perl",
    "/usr/share/perl5",
    "/usr/share/git-core",
    "/usr/share/ca-certificates",
)
"""The parts of /usr/share programs read at run time; an allowlist, because /usr/share is where
packaged data sets live (WordNet in /usr/share/wordnet, word lists in /usr/share/dict)."""

ETC_PATHS = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/protocols",
    "/etc/services",
)
"""What programs read from /etc; passwd, group and hosts are generated (see `Isolation`), the rest stays out."""

HIDDEN_PATHS = (
    "/usr/share/wordnet",
    "/usr/share/dict",
    "/usr/share/nltk_data",
    "/usr/lib/nltk_data",
    "/usr/local/share/nltk_data",
)
"""Never exposed even where a configured path contains them: lexical databases and word lists that could
rebuild labels. Bound trees containing one are split around it (costs a mount per sibling)."""

API_SOURCES = (
    "servers/w2s/api.py",
    "servers/w2s/losses.py",
    "servers/w2s/heads.py",
    "servers/w2s/methods",
    "servers/w2s/scoring.py",
    "servers/w2s/bundle.py",
    "servers/w2s/runner.py",
    "servers/w2s/encoders.py",
    "servers/w2s/lora.py",
)
"""Project files importable inside (relative to the project root); missing ones are skipped."""


PROJECT_PACKAGES = ("servers", "client", "manifests")
"""This project's top-level packages: installed as a wheel, they sit in the site-packages the sandbox's
Python needs, and they hold the task packs, so each is hidden there."""


def _python_paths() -> tuple[str, ...]:
    return tuple(dict.fromkeys((sys.base_prefix, sys.prefix)))


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of a `Sandbox` service; `data_dir` is the server's private data directory."""

    data_dir: Path
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    project_root: Path = PROJECT_ROOT
    api_sources: tuple[str, ...] = API_SOURCES
    python_paths: tuple[str, ...] = field(default_factory=_python_paths)
    system_paths: tuple[str, ...] = SYSTEM_PATHS + USR_SHARE_PATHS + ETC_PATHS
    hidden_paths: tuple[str, ...] = HIDDEN_PATHS
    extra_ro_paths: tuple[str, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()
    """Read-only binds (host folder, path inside), e.g. the PGR server's public task inputs at /tasks."""
    gpu_devices: tuple[str, ...] = ()
    cpu_weight: int = CPU_WEIGHT
    """The service's CPU weight beside sibling services (cgroup v2 scale; CPU_WEIGHT = equal), where cgroups allow."""
    sandbox_uid: int = 1000
    bwrap: str = "bwrap"

    @property
    def root(self) -> Path:
        """The sandbox service's own directory inside the data directory."""
        return self.data_dir / "sandbox"

    @property
    def installed_packages(self) -> tuple[str, ...]:
        """The project's packages inside an exposed Python (installed as a wheel); none in a checkout."""
        root = self.project_root.resolve()
        if not any(root.is_relative_to(Path(path).resolve()) for path in self.python_paths):
            return ()
        return tuple(str(root / name) for name in PROJECT_PACKAGES)

    @property
    def private_paths(self) -> tuple[Path, ...]:
        """What no exposed path may contain: the data directory and the project (or, installed, its packages)."""
        packages = self.installed_packages
        return (self.data_dir, *map(Path, packages)) if packages else (self.data_dir, self.project_root)
