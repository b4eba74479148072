"""The forum MCP server: how researchers share findings and catch up with each other.

Run alone with `aar serve forum` (stdio, for Claude Desktop) or `aar serve forum --http`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from servers.forum.models import (
    Body,
    Feed,
    Kind,
    Limit,
    Post,
    PostId,
    PostKind,
    SearchResults,
    SnapshotRef,
    SubmissionRef,
    Tag,
    Tags,
    Thread,
    Title,
    VoteResult,
)
from servers.forum.provenance import Provenance
from servers.forum.store import DATA_FILE, ForumStore
from servers.kit.annotations import APPEND, IDEMPOTENT_WRITE, READ_ONLY
from servers.kit.hosting import lifespan_state, new_server
from servers.kit.identity import calling_agent
from servers.kit.names import AgentName
from servers.kit.settings import Settings

INSTRUCTIONS = """\
The research forum shared by every researcher of the team. Post what you find (kind 'finding',
citing the storage snapshot behind it, or 'result', citing your own PGR submission), ideas and
questions; claim a direction with kind 'claim'. What a post cites must exist. Call `feed` with
the cursor it returned last time to see only what is new, `search` to find earlier work,
`read_thread` to read a discussion whole. Posts cannot be edited: reply to correct one. You
always post as yourself. Each agent may post, reply and vote only so often (an error names the
limit and when it resets)."""


@dataclass
class ForumState:
    store: ForumStore
    provenance: Provenance
    local_agent: str | None


def _state(ctx: Context) -> ForumState:
    return lifespan_state(ctx, ForumState)


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The forum over `settings.data_dir/forum.sqlite`; `local_agent` fixes the caller (stdio, tests)."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[ForumState]:
        store = await ForumStore.open(settings.data_dir / DATA_FILE, settings=settings)
        try:
            yield ForumState(store=store, provenance=Provenance(settings), local_agent=local_agent)
        finally:
            await store.close()

    server = new_server(
        "forum", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan
    )

    @server.tool(title="Start a thread", annotations=APPEND)
    async def post(
        title: Title,
        body: Body,
        kind: Annotated[PostKind, Field(description="finding, result, idea, question, claim or note.")],
        ctx: Context,
        tags: Tags = [],
        snapshot: Annotated[SnapshotRef | None, Field(description="Storage snapshot id this post cites.")] = None,
        submission: Annotated[SubmissionRef | None, Field(description="PGR submission id this post cites.")] = None,
    ) -> Post:
        """Start a new thread, as yourself. A 'result' cites your PGR submission (and may cite its snapshot)."""
        state = _state(ctx)
        author = calling_agent(state.local_agent)
        return await state.store.create_post(
            author=author,
            kind=kind,
            title=title,
            body=body,
            tags=tags,
            snapshot=await state.provenance.check(author=author, kind=kind, snapshot=snapshot, submission=submission),
            submission=submission,
        )

    @server.tool(title="Reply to a post", annotations=APPEND)
    async def reply(post_id: PostId, body: Body, ctx: Context) -> Post:
        """Reply to a post (a thread's first post or another reply), as yourself."""
        state = _state(ctx)
        return await state.store.create_post(
            author=calling_agent(state.local_agent), kind="reply", title="", body=body, tags=[], parent_id=post_id
        )

    @server.tool(title="Read a thread", annotations=READ_ONLY)
    async def read_thread(
        post_id: PostId,
        ctx: Context,
        offset: Annotated[int, Field(ge=0, description="Skip this many replies (next_offset of the last page).")] = 0,
        limit: Annotated[int, Field(ge=1, le=100, description="Most replies to return (1-100).")] = 20,
    ) -> Thread:
        """Read the thread a post belongs to: its first post and a page of replies; page on with next_offset."""
        return await _state(ctx).store.thread(post_id, offset=offset, limit=limit)

    @server.tool(title="What is new", annotations=READ_ONLY)
    async def feed(
        ctx: Context,
        since: Annotated[int, Field(ge=0, description="Cursor from your last feed call; 0 for everything.")] = 0,
        tag: Tag | None = None,
        kind: Kind | None = None,
        author: AgentName | None = None,
        limit: Limit = 50,
    ) -> Feed:
        """What is new since your cursor, oldest first, optionally only one tag, kind or author."""
        return await _state(ctx).store.feed(since=since, limit=limit, tag=tag, kind=kind, author=author)

    @server.tool(title="Search the forum", annotations=READ_ONLY)
    async def search(
        query: Annotated[
            str, Field(min_length=1, max_length=500, description="Words to find; 'conf*' matches a prefix.")
        ],
        ctx: Context,
        tag: Tag | None = None,
        kind: Kind | None = None,
        author: AgentName | None = None,
        limit: Limit = 20,
    ) -> SearchResults:
        """Full-text search over titles, bodies and tags; best matches first, each with a snippet."""
        return await _state(ctx).store.search(query, limit=limit, tag=tag, kind=kind, author=author)

    @server.tool(title="Vote on a post", annotations=IDEMPOTENT_WRITE)
    async def vote(
        post_id: PostId,
        value: Annotated[Literal[1, -1, 0], Field(description="+1 up, -1 down, 0 to withdraw your vote.")],
        ctx: Context,
    ) -> VoteResult:
        """Vote on a post. You have one vote per post; voting again replaces it."""
        state = _state(ctx)
        return await state.store.vote(post_id=post_id, agent=calling_agent(state.local_agent), value=value)

    return server
