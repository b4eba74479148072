"""Resource limits of sandboxed commands and jobs, and the message an agent sees when one is hit.

Every limit has a default that suits a shared 2-core development machine as well as a GPU box;
a deployment overrides fields with the setting AAR_SANDBOX_LIMITS (a JSON object of field names).
An agent's disk quota (`workspace_mib`) covers its workspace and its job logs together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MIB = 1024 * 1024


def naming(field: str) -> str:
    """How a refusal ends: the limit it hit, in the form every server uses (the console counts these)."""
    return f" (setting AAR_SANDBOX_LIMITS field {field})"


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
    output_bytes: int = 64 * 1024
    """Per stream of one exec: the first and last halves are kept, the middle is cut with a note."""
    exec_progress_s: float = 2.0
    """How often a running exec reports MCP progress, so that clients with short timeouts keep waiting."""
    job_log_bytes: int = 64 * MIB
    job_history_per_agent: int = 50
    """Finished jobs kept per agent (record and log); the oldest go when a new job is started."""
    job_history_days: float = 7.0
    """Finished jobs older than this are deleted with their logs."""
    list_max_entries: int = 1000
    """Most entries one list_files call returns; page on with next_offset."""
    read_max_bytes: int = 1 * MIB
    write_max_bytes: int = 64 * MIB
    snapshot_max_bytes: int = 256 * MIB
    max_execs_per_agent: int = 4
    max_running_jobs_per_agent: int = 2
    max_running_jobs_total: int = 8
    max_queued_jobs_per_agent: int = 16
    kill_grace_s: float = 5.0
    box_idle_s: float = 600.0
    """An agent's box (its long-lived sandbox) is stopped after this long without a command or job."""
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
                return f"killed: disk quota {self.workspace_mib} MiB exceeded; {self.quota_advice()}"
            case Limit.WORKSPACE_FILES:
                return f"killed: workspace limit of {self.workspace_max_files} files exceeded; delete files"

    def quota_advice(self) -> str:
        """What frees disk quota, which counts the workspace and the logs of jobs still kept."""
        return (
            "the quota counts your workspace and your job logs; delete files or finished jobs (delete_job), or wait "
            f"for old jobs to go (kept for your last {self.job_history_per_agent} finished jobs, at most "
            f"{self.job_history_days:g} days)"
        )
