"""The forum's SQLite file: posts (immutable), tags, votes, and an FTS5 index kept by a trigger."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servers.forum.models import Feed, Post, PostSummary, SearchHit, SearchResults, Thread, VoteResult
from servers.kit.database import Database
from servers.kit.errors import NotFoundError, ToolInputError

EXCERPT_CHARS = 280

SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id INTEGER NOT NULL,
    parent_id INTEGER REFERENCES posts(id),
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    snapshot TEXT,
    submission TEXT,
    score INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_by_thread ON posts(thread_id, id);
CREATE INDEX IF NOT EXISTS posts_by_author ON posts(author, id);
CREATE INDEX IF NOT EXISTS posts_by_kind ON posts(kind, id);
CREATE TABLE IF NOT EXISTS post_tags (
    tag TEXT NOT NULL,
    post_id INTEGER NOT NULL REFERENCES posts(id),
    PRIMARY KEY (tag, post_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS votes (
    post_id INTEGER NOT NULL REFERENCES posts(id),
    agent TEXT NOT NULL,
    value INTEGER NOT NULL CHECK (value IN (-1, 1)),
    PRIMARY KEY (post_id, agent)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS posts_fts USING fts5(
    title, body, tags, content='posts', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts(rowid, title, body, tags) VALUES (new.id, new.title, new.body, new.tags);
END;
"""

_COLUMNS = "id, thread_id, parent_id, author, kind, title, body, tags, snapshot, submission, score, created_at"
_SEARCH_TERM = re.compile(r"[\w-]+\*?", re.UNICODE)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(row: Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(row)
    fields["tags"] = json.loads(fields["tags"])
    fields["created_at"] = _iso(fields["created_at"])
    return fields


def _post(row: Mapping[str, Any]) -> Post:
    return Post(**_fields(row))


def _summary(row: Mapping[str, Any]) -> PostSummary:
    fields = _fields(row)
    body = fields.pop("body")
    fields["excerpt"] = body if len(body) <= EXCERPT_CHARS else body[: EXCERPT_CHARS - 1] + "…"
    return PostSummary(**fields)


def fts_query(text: str) -> str:
    """Turn plain words into an FTS5 query matching all of them (a trailing * keeps prefix search)."""
    terms = _SEARCH_TERM.findall(text)
    if not terms:
        raise ToolInputError(f"search query {text!r} has no words to search for: give one or more words")
    quoted = []
    for term in terms:
        prefix = term.endswith("*")
        word = term.rstrip("*")
        quoted.append(f'"{word}"' + ("*" if prefix else ""))
    return " ".join(quoted)


class ForumStore:
    """All reads and writes of the forum."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "NORMAL") -> ForumStore:
        return cls(await Database.open(path, SCHEMA, synchronous=synchronous))

    async def close(self) -> None:
        await self._database.close()

    async def create_post(
        self,
        *,
        author: str,
        kind: str,
        title: str,
        body: str,
        tags: list[str],
        snapshot: str | None = None,
        submission: str | None = None,
        parent_id: int | None = None,
    ) -> Post:
        """Insert a post (a reply when `parent_id` is given) and return it as stored."""
        tags = sorted(set(tags))
        async with self._database.transaction() as connection:
            thread_id = None
            if parent_id is not None:
                async with connection.execute("SELECT thread_id FROM posts WHERE id = ?", (parent_id,)) as cursor:
                    parent = await cursor.fetchone()
                if parent is None:
                    raise NotFoundError(f"no post with id {parent_id}: take an id from feed, search or read_thread")
                thread_id = parent["thread_id"]
            cursor = await connection.execute(
                "INSERT INTO posts (thread_id, parent_id, author, kind, title, body, tags, snapshot, submission,"
                " created_at) VALUES (coalesce(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (thread_id, parent_id, author, kind, title, body, json.dumps(tags), snapshot, submission, time.time()),
            )
            post_id = cursor.lastrowid
            if thread_id is None:
                await connection.execute("UPDATE posts SET thread_id = id WHERE id = ?", (post_id,))
            await connection.executemany(
                "INSERT INTO post_tags (tag, post_id) VALUES (?, ?)", [(t, post_id) for t in tags]
            )
            async with connection.execute(f"SELECT {_COLUMNS} FROM posts WHERE id = ?", (post_id,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return _post(row)

    async def thread(self, post_id: int) -> Thread:
        row = await self._database.fetch_one("SELECT thread_id FROM posts WHERE id = ?", (post_id,))
        if row is None:
            raise NotFoundError(f"no post with id {post_id}: take an id from feed or search")
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM posts WHERE thread_id = ? ORDER BY id", (row["thread_id"],)
        )
        posts = [_post(r) for r in rows]
        return Thread(root=posts[0], replies=posts[1:])

    def _filters(self, tag: str | None, kind: str | None, author: str | None) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if tag is not None:
            clauses.append("p.id IN (SELECT post_id FROM post_tags WHERE tag = ?)")
            params.append(tag)
        if kind is not None:
            clauses.append("p.kind = ?")
            params.append(kind)
        if author is not None:
            clauses.append("p.author = ?")
            params.append(author)
        return clauses, params

    async def feed(self, *, since: int, limit: int, tag: str | None, kind: str | None, author: str | None) -> Feed:
        clauses, params = self._filters(tag, kind, author)
        where = " AND ".join(["p.id > ?", *clauses])
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM posts p WHERE {where} ORDER BY p.id LIMIT ?", [since, *params, limit + 1]
        )
        has_more = len(rows) > limit
        posts = [_summary(r) for r in rows[:limit]]
        return Feed(posts=posts, next_cursor=posts[-1].id if posts else since, has_more=has_more)

    async def search(
        self, query: str, *, limit: int, tag: str | None, kind: str | None, author: str | None
    ) -> SearchResults:
        clauses, params = self._filters(tag, kind, author)
        where = " AND ".join(["posts_fts MATCH ?", *clauses])
        columns = ", ".join(f"p.{c.strip()}" for c in _COLUMNS.split(","))
        rows = await self._database.fetch_all(
            f"SELECT {columns}, snippet(posts_fts, -1, '[', ']', '…', 16) AS snippet, bm25(posts_fts) AS rank"
            f" FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid WHERE {where} ORDER BY rank LIMIT ?",
            [fts_query(query), *params, limit],
        )
        hits = []
        for row in rows:
            fields = dict(row)
            snippet, rank = fields.pop("snippet"), fields.pop("rank")
            hits.append(SearchHit(post=_summary(fields), snippet=snippet, rank=rank))
        return SearchResults(hits=hits)

    async def vote(self, *, post_id: int, agent: str, value: int) -> VoteResult:
        """Set `agent`'s vote on a post to +1 or -1, or withdraw it with 0; one vote per agent per post."""
        async with self._database.transaction() as connection:
            async with connection.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)) as cursor:
                if await cursor.fetchone() is None:
                    raise NotFoundError(f"no post with id {post_id}: take an id from feed or search")
            if value == 0:
                await connection.execute("DELETE FROM votes WHERE post_id = ? AND agent = ?", (post_id, agent))
            else:
                await connection.execute(
                    "INSERT INTO votes (post_id, agent, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (post_id, agent) DO UPDATE SET value = excluded.value",
                    (post_id, agent, value),
                )
            await connection.execute(
                "UPDATE posts SET score = (SELECT coalesce(sum(value), 0) FROM votes WHERE post_id = ?) WHERE id = ?",
                (post_id, post_id),
            )
            async with connection.execute("SELECT score FROM posts WHERE id = ?", (post_id,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return VoteResult(post_id=post_id, your_vote=value, score=row["score"])
