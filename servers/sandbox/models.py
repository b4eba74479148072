"""What the sandbox's tools return: the store (`store.Sandbox`) answers in these models, the tools pass them on.

Times are UTC ISO 8601 on the wire (`UtcTimestamp`); the job records keep Unix seconds.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from servers.kit.timestamps import UtcTimestamp
from servers.sandbox.limits import Limit


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST})


class WrittenFile(BaseModel):
    path: str
    size: int = Field(description="Bytes written.")


class FileText(BaseModel):
    path: str
    offset: int
    next_offset: int = Field(description="Pass as `offset` to read on.")
    size: int = Field(description="Size of the whole file in bytes.")
    eof: bool = Field(description="True when nothing follows.")
    content: str = Field(description="UTF-8 text (undecodable bytes replaced).")


class ListedFile(BaseModel):
    path: str
    kind: str = Field(description="file, dir, symlink or other.")
    size: int


class FileList(BaseModel):
    entries: list[ListedFile]
    truncated: bool = Field(description="True if more entries follow: pass next_offset as offset.")
    next_offset: int | None = Field(description="The offset of the next page; null when the listing is complete.")


class CommandResult(BaseModel):
    exit_code: int | None = Field(description="Null if the command was killed.")
    stdout: str = Field(description="Past the size limit, the start and the end with a note on what was cut.")
    stderr: str
    duration_s: float
    stdout_truncated: bool
    stderr_truncated: bool
    limit_hit: Limit | None = Field(description="The limit that ended the command: timeout, cpu, memory, ...")
    error: str | None = Field(description="Why the command was killed, naming the limit.")


class Job(BaseModel):
    id: str
    name: str
    command: str
    state: JobState = Field(description="queued, running, succeeded, failed, cancelled or lost (server restarted).")
    exit_code: int | None
    limit_hit: Limit | None
    error: str | None
    timeout_s: float
    gpus: int | None = Field(
        default=None, description="GPUs it asked for (null: the sandbox's default, one GPU where there are any)."
    )
    created_at: UtcTimestamp
    started_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


class JobList(BaseModel):
    jobs: list[Job] = Field(description="Your jobs, newest first.")


class JobLog(BaseModel):
    job_id: str
    offset: int
    next_offset: int = Field(description="Pass as `offset` to read what follows.")
    size: int = Field(description="Log size so far.")
    text: str
    complete: bool = Field(description="True once the job has finished and the log is whole.")


class LoadedSnapshot(BaseModel):
    snapshot: str
    files: list[str] = Field(description="Workspace paths written.")
