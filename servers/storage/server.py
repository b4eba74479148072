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
from pydantic import Field

from servers.kit.annotations import APPEND, READ_ONLY
from servers.kit.hosting import lifespan_state, new_server
from servers.kit.identity import calling_agent
from servers.kit.names import AgentName
from servers.kit.settings import Settings
from servers.storage.models import (
    Chars,
    Diff,
    FileContent,
    FilePath,
    Limit,
    Offset,
    Skip,
    Snapshot,
    SnapshotId,
    SnapshotList,
)
from servers.storage.store import SnapshotRepository, open_repository

INSTRUCTIONS = """\
Versioned code snapshots shared by the team, kept in a git repository with one branch per
researcher. `save` files to get a snapshot id; cite it in forum posts and PGR submissions.
Build on anyone's snapshot with `based_on`. Every snapshot is readable by everyone."""


@dataclass
class StorageState:
    repository: SnapshotRepository
    local_agent: str | None


def _state(ctx: Context) -> StorageState:
    return lifespan_state(ctx, StorageState)


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The storage server over `settings.data_dir/storage.git`; `local_agent` fixes the caller."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[StorageState]:
        repository = await open_repository(settings)
        yield StorageState(repository=repository, local_agent=local_agent)

    server = new_server(
        "storage", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan
    )

    @server.tool(title="Save a snapshot", annotations=APPEND)
    async def save(
        files: Annotated[dict[str, str], Field(description="Path to full text content of each file to write.")],
        message: Annotated[str, Field(min_length=1, max_length=2000, description="What changed and why.")],
        ctx: Context,
        based_on: Annotated[
            SnapshotId | None,
            Field(description="Start from this snapshot's files (anyone's); omit to save only `files`."),
        ] = None,
        delete: Annotated[list[FilePath], Field(max_length=500, description="Paths of `based_on` to leave out.")] = [],
    ) -> Snapshot:
        """Save files as a new snapshot on your own branch and return it (its id is what you cite)."""
        state = _state(ctx)
        return await state.repository.save(
            agent=calling_agent(state.local_agent), files=files, message=message, based_on=based_on, delete=delete
        )

    @server.tool(title="List snapshots", annotations=READ_ONLY)
    async def list_snapshots(
        ctx: Context,
        author: Annotated[AgentName | None, Field(description="Only this agent's.")] = None,
        limit: Limit = 50,
        offset: Skip = 0,
    ) -> SnapshotList:
        """List snapshots, newest first: everyone's, or one author's; page with offset."""
        listed = await _state(ctx).repository.list_snapshots(author=author, limit=limit, offset=offset)
        return SnapshotList(snapshots=listed)

    @server.tool(title="A snapshot's files", annotations=READ_ONLY)
    async def get_snapshot(snapshot: SnapshotId, ctx: Context) -> Snapshot:
        """A snapshot's author, message, parents and file list with sizes."""
        return await _state(ctx).repository.snapshot(snapshot)

    @server.tool(title="Read a file of a snapshot", annotations=READ_ONLY)
    async def read_file(
        snapshot: SnapshotId, path: FilePath, ctx: Context, offset: Offset = 0, limit: Chars = None
    ) -> FileContent:
        """Read one file of one snapshot, a page at a time: pass next_offset as offset until it is null."""
        return await _state(ctx).repository.read_file(snapshot, path, offset=offset, limit=limit)

    @server.tool(title="Compare two snapshots", annotations=READ_ONLY)
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

    @server.tool(title="History of snapshots", annotations=READ_ONLY)
    async def log(snapshot: SnapshotId, ctx: Context, limit: Limit = 50, offset: Skip = 0) -> SnapshotList:
        """The ancestry of a snapshot, itself first: the author's earlier snapshots and those it built on."""
        return SnapshotList(snapshots=await _state(ctx).repository.log(snapshot, limit=limit, offset=offset))

    return server
