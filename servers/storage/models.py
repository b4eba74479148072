"""What the storage server's tools take and return; the field descriptions are what an agent reads."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from servers.kit.timestamps import UtcTimestamp

SnapshotId = Annotated[
    str, Field(pattern=r"^[0-9a-f]{7,40}$", description="A snapshot id (a commit hash; 7 or more leading hex digits).")
]
FilePath = Annotated[str, Field(min_length=1, max_length=255, description="Relative path, e.g. 'method.py'.")]
Limit = Annotated[int, Field(ge=1, le=100, description="Most snapshots to return (1-100).")]
Skip = Annotated[int, Field(ge=0, description="Skip this many first (for the next page, add the count you got).")]
Offset = Annotated[int, Field(ge=0, description="Character offset to start at (next_offset of the previous page).")]
Chars = Annotated[int | None, Field(ge=1, description="Most characters to return (capped by the server).")]


class SnapshotInfo(BaseModel):
    """A snapshot as listed: who saved it, when, and why."""

    id: str = Field(description="The snapshot id (full commit hash).")
    author: str
    message: str
    created_at: UtcTimestamp
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
    """One page of a file: `content` is characters [offset, offset + len(content)) of `total_chars`."""

    snapshot: str
    path: str
    size: int = Field(description="Bytes of the whole file.")
    content: str
    offset: int = Field(description="Character offset of `content` in the file.")
    total_chars: int = Field(description="Characters in the whole file.")
    next_offset: int | None = Field(description="Pass as `offset` to read on; null when this page reaches the end.")
    more: str | None = Field(default=None, description="How to read the rest, when the file goes on.")


class Diff(BaseModel):
    """One page of the unified diff: characters [offset, offset + len(diff)) of `total_chars`."""

    from_snapshot: str
    to_snapshot: str
    files_changed: list[str]
    diff: str = Field(description="Unified diff.")
    offset: int = Field(default=0, description="Character offset of this page in the whole diff.")
    total_chars: int = Field(default=0, description="Characters in the whole diff.")
    next_offset: int | None = Field(default=None, description="Pass as `offset` for the next page; null at the end.")
    truncated: bool = Field(description="True if more follows: page on with next_offset, or narrow with `path`.")
    more: str | None = Field(default=None, description="How to read the rest, when the diff goes on.")
