"""Resource limits of sandboxed commands and jobs, and the message an agent sees when one is hit.

Settings wiring comes later; until then every limit has a default that suits a shared 2-core
development machine as well as a GPU box, and a deployment overrides fields with
`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024


class Limit(StrEnum):
    """A limit whose breach ended a command (the string is what job records and results carry)."""

    TIMEOUT = "timeout"
    CPU = "cpu"
    MEMORY = "memory"
    PROCESSES = "processes"
    FILE_SIZE = "file_size"
    WORKSPACE_SIZE = "workspace_size"
    WORKSPACE_FILES = "workspace_files"


@dataclass(frozen=True)
class SandboxLimits:
    """Per-command, per-job, per-agent and global limits (sizes in MiB, times in seconds)."""

    exec_timeout_s: float = 120.0
    exec_timeout_max_s: float = 1800.0
    job_timeout_s: float = 12 * 3600.0
    exec_cpu_s: int = 3600
    job_cpu_s: int = 7 * 24 * 3600
    memory_mib: int = 4096
    max_processes: int = 256
    file_size_mib: int = 2048
    workspace_mib: int = 10240
    workspace_max_files: int = 200_000
    tmp_mib: int = 1024
    output_bytes: int = 1 * MIB
    job_log_bytes: int = 64 * MIB
    read_max_bytes: int = 1 * MIB
    write_max_bytes: int = 64 * MIB
    snapshot_max_bytes: int = 256 * MIB
    max_execs_per_agent: int = 4
    max_running_jobs_per_agent: int = 2
    max_running_jobs_total: int = 8
    max_queued_jobs_per_agent: int = 16
    kill_grace_s: float = 5.0
    workspace_poll_s: float = 1.0

    def describe(self, limit: Limit, timeout_s: float | None = None, cpu_s: int | None = None) -> str:
        """The error text for a command that `limit` ended."""
        match limit:
            case Limit.TIMEOUT:
                return f"killed: wall-clock limit {timeout_s:g} s exceeded"
            case Limit.CPU:
                return f"killed: CPU time limit {cpu_s} s per process exceeded"
            case Limit.MEMORY:
                return f"killed: memory limit {self.memory_mib} MiB exceeded"
            case Limit.PROCESSES:
                return f"killed: process limit {self.max_processes} processes exceeded (fork bomb?)"
            case Limit.FILE_SIZE:
                return f"killed: file size limit {self.file_size_mib} MiB per file exceeded"
            case Limit.WORKSPACE_SIZE:
                return f"killed: workspace size limit {self.workspace_mib} MiB exceeded; delete files to free space"
            case Limit.WORKSPACE_FILES:
                return f"killed: workspace limit of {self.workspace_max_files} files exceeded; delete files"
