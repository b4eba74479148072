"""The storage MCP server: save and read versioned code snapshots.

Any agent may read any snapshot; an agent's saves always go to its own branch.
Run alone with `aar serve storage` (stdio) or `aar serve storage --http`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from servers.kit.hosting import new_server
from servers.kit.identity import calling_agent
from servers.kit.settings import Settings
from servers.storage.models import Diff, FileContent, Snapshot, SnapshotId, SnapshotList
from servers.storage.repository import Limits, SnapshotRepository

INSTRUCTIONS = """\
Versioned code snapshots shared by the team, kept in a git repository with one branch per
researcher. `save` files to get a snapshot id; cite it in forum posts and PGR submissions.
Build on anyone's snapshot with `based_on`. Every snapshot is readable by everyone."""

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)

FilePath = Annotated[str, Field(min_length=1, max_length=255, description="Relative path, e.g. 'method.py'.")]
Limit = Annotated[int, Field(ge=1, le=100, description="Most snapshots to return (1-100).")]
Skip = Annotated[int, Field(ge=0, description="Skip this many first (for the next page, add the count you got).")]
Offset = Annotated[int, Field(ge=0, description="Character offset to start at (next_offset of the previous page).")]
Chars = Annotated[int | None, Field(ge=1, description="Most characters to return (capped by the server).")]


@dataclass
class StorageState:
    repository: SnapshotRepository
    local_agent: str | None


def _state(ctx: Context) -> StorageState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def open_repository(settings: Settings) -> SnapshotRepository:
    """The snapshot repository of `settings.data_dir` (also used by the sandbox and pgr servers)."""
    limits = Limits(
        max_file_bytes=settings.storage_max_file_bytes,
        max_snapshot_bytes=settings.storage_max_snapshot_bytes,
        max_files=settings.storage_max_files,
        max_diff_chars=settings.storage_max_diff_chars,
        max_read_chars=settings.storage_max_read_chars,
    )
    repository = SnapshotRepository(settings.data_dir / "storage.git", limits)
    await repository.init()
    return repository


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The storage server over `settings.data_dir/storage.git`; `local_agent` fixes the caller."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[StorageState]:
        repository = await open_repository(settings)
        yield StorageState(repository=repository, local_agent=local_agent)

    server = new_server(
        "storage", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan
    )

    @server.tool(annotations=WRITE)
    async def save(
        files: Annotated[dict[str, str], Field(description="Path to full text content of each file to write.")],
        message: Annotated[str, Field(min_length=1, max_length=2000, description="What changed and why.")],
        ctx: Context,
        based_on: Annotated[
            SnapshotId | None,
            Field(description="Start from this snapshot's files (anyone's); omit to save only `files`."),
        ] = None,
        delete: Annotated[list[FilePath], Field(max_length=500, description="Paths of `based_on` to leave out.")] = [],  # noqa: B006
    ) -> Snapshot:
        """Save files as a new snapshot on your own branch and return it (its id is what you cite)."""
        state = _state(ctx)
        return await state.repository.save(
            agent=calling_agent(state.local_agent), files=files, message=message, based_on=based_on, delete=delete
        )

    @server.tool(annotations=READ)
    async def list_snapshots(
        ctx: Context,
        author: Annotated[
            str | None, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Only this agent's.")
        ] = None,
        limit: Limit = 50,
        offset: Skip = 0,
    ) -> SnapshotList:
        """List snapshots, newest first: everyone's, or one author's; page with offset."""
        listed = await _state(ctx).repository.list_snapshots(author=author, limit=limit, offset=offset)
        return SnapshotList(snapshots=listed)

    @server.tool(annotations=READ)
    async def get_snapshot(snapshot: SnapshotId, ctx: Context) -> Snapshot:
        """A snapshot's author, message, parents and file list with sizes."""
        return await _state(ctx).repository.snapshot(snapshot)

    @server.tool(annotations=READ)
    async def read_file(
        snapshot: SnapshotId, path: FilePath, ctx: Context, offset: Offset = 0, limit: Chars = None
    ) -> FileContent:
        """Read one file of one snapshot, a page at a time: pass next_offset as offset until it is null."""
        return await _state(ctx).repository.read_file(snapshot, path, offset=offset, limit=limit)

    @server.tool(annotations=READ)
    async def diff(
        from_snapshot: SnapshotId,
        to_snapshot: SnapshotId,
        ctx: Context,
        path: Annotated[FilePath | None, Field(description="Only this file.")] = None,
        offset: Offset = 0,
        limit: Chars = None,
    ) -> Diff:
        """Unified diff between two snapshots (any authors), a page at a time: pass next_offset as offset."""
        return await _state(ctx).repository.diff(from_snapshot, to_snapshot, path, offset=offset, limit=limit)

    @server.tool(annotations=READ)
    async def log(snapshot: SnapshotId, ctx: Context, limit: Limit = 50, offset: Skip = 0) -> SnapshotList:
        """The ancestry of a snapshot, itself first: the author's earlier snapshots and those it built on."""
        return SnapshotList(snapshots=await _state(ctx).repository.log(snapshot, limit=limit, offset=offset))

    return server
