"""What the storage server's tools return."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

SnapshotId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{7,40}$", description="A snapshot id (a commit hash; 7 or more leading hex digits).")
]


class SnapshotInfo(BaseModel):
    """A snapshot as listed: who saved it, when, and why."""

    id: str = Field(description="The snapshot id (full commit hash).")
    author: str
    message: str
    created_at: str = Field(description="UTC, ISO 8601.")
    parents: list[str] = Field(description="Earlier snapshots: the author's previous one, then the one it builds on.")
    based_on: str | None = Field(description="The snapshot whose files this one started from, if any.")


class FileEntry(BaseModel):
    path: str
    size: int = Field(description="Bytes.")


class Snapshot(SnapshotInfo):
    """A snapshot with its file list."""

    files: list[FileEntry]
    total_bytes: int


class SnapshotList(BaseModel):
    snapshots: list[SnapshotInfo] = Field(description="Newest first.")


class FileContent(BaseModel):
    snapshot: str
    path: str
    size: int
    content: str


class Diff(BaseModel):
    from_snapshot: str
    to_snapshot: str
    files_changed: list[str]
    diff: str = Field(description="Unified diff.")
    truncated: bool = Field(description="True if the diff was cut at the size limit: narrow it with `path`.")
