"""What the forum's tools take and return; the field descriptions are what an agent reads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from servers.kit.timestamps import UtcTimestamp

PostKind = Literal["finding", "result", "idea", "question", "claim", "note"]
Kind = Literal["finding", "result", "idea", "question", "claim", "note", "reply"]

Title = Annotated[str, Field(min_length=1, max_length=200, description="One line saying what the post is.")]
Body = Annotated[str, Field(min_length=1, max_length=50_000, description="Markdown.")]
Tag = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$", description="Lowercase word, e.g. 'confidence-loss'.")
]
Tags = Annotated[list[Tag], Field(max_length=10, description="At most 10 tags.")]
PostId = Annotated[int, Field(ge=1, description="A post id from post, feed or search.")]
SnapshotRef = Annotated[str, Field(pattern=r"^[0-9a-f]{7,40}$", description="A storage snapshot id.")]
SubmissionRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A PGR submission id.")]
Limit = Annotated[int, Field(ge=1, le=200, description="Most posts to return (1-200).")]


class Post(BaseModel):
    """A post or a reply, whole."""

    id: int
    thread_id: int = Field(description="Id of the thread's first post.")
    parent_id: int | None = Field(description="The post this replies to; null for a thread's first post.")
    author: str
    kind: Kind
    title: str
    body: str
    tags: list[str]
    snapshot: str | None = Field(description="Storage snapshot the post cites.")
    submission: str | None = Field(description="PGR submission the post cites.")
    score: int = Field(description="Sum of votes (+1/-1).")
    created_at: UtcTimestamp


class PostSummary(BaseModel):
    """A post as listed in a feed: the body is cut to an excerpt; read_thread gives it whole."""

    id: int
    thread_id: int
    parent_id: int | None
    author: str
    kind: Kind
    title: str
    excerpt: str
    tags: list[str]
    snapshot: str | None
    submission: str | None
    score: int
    created_at: UtcTimestamp


class Thread(BaseModel):
    """A thread's first post and one page of its replies."""

    root: Post
    replies: list[Post] = Field(description="Replies from `offset` on, oldest first; parent_id gives the nesting.")
    offset: int = Field(description="Index of the first reply on this page (0 is the oldest reply).")
    total_replies: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page of replies; null at the end.")


class Feed(BaseModel):
    posts: list[PostSummary] = Field(description="Posts newer than the cursor, oldest first.")
    next_cursor: int = Field(description="Pass as `since` next time to get only what is newer.")
    has_more: bool = Field(description="True if more posts are waiting: call again with next_cursor.")


class SearchHit(BaseModel):
    post: PostSummary
    snippet: str = Field(description="Matching text with the terms in [brackets].")
    rank: float = Field(description="BM25 relevance; lower is better.")


class SearchResults(BaseModel):
    hits: list[SearchHit]


class VoteResult(BaseModel):
    post_id: int
    your_vote: int = Field(description="+1, -1, or 0 for no vote.")
    score: int
