"""The forum's SQLite file: posts (immutable), tags, votes, and an FTS5 index kept by a trigger."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers.forum.models import Feed, Post, PostSummary, SearchHit, SearchResults, Thread, VoteResult
from servers.kit.database import Database, ReadOnlyFile, ReadStopped, StopCheck
from servers.kit.errors import LimitError, NotFoundError, ToolInputError
from servers.kit.settings import Settings, get_settings
from servers.kit.timestamps import iso_utc

EXCERPT_CHARS = 280
MIN_PREFIX_CHARS = 2
"""The FTS index keeps 2- and 3-character prefixes: a shorter prefix would expand to most of the vocabulary."""

FTS_TABLE = """CREATE VIRTUAL TABLE IF NOT EXISTS posts_fts USING fts5(
    title, body, tags, content='posts', content_rowid='id', tokenize='porter unicode61', prefix='2 3'
)"""

SCHEMA = (
    """
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
    created_at REAL NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS vote_events (agent TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS vote_events_by_agent ON vote_events(agent, at);
"""
    + FTS_TABLE
    + """;
CREATE TRIGGER IF NOT EXISTS posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts(rowid, title, body, tags) VALUES (new.id, new.title, new.body, new.tags);
END;
"""
)

RECENT_POSTS = "SELECT created_at FROM posts WHERE author = ? AND created_at > ? ORDER BY created_at DESC LIMIT ?"
BYTES_POSTED = "SELECT total(bytes) FROM posts WHERE author = ? AND created_at > ?"
POSTS_AGING_OUT = "SELECT created_at, bytes FROM posts WHERE author = ? AND created_at > ? ORDER BY created_at"
"""The write limits' queries, all on the (author, created_at, bytes) index: an author's newest posts since a
time (at most LIMIT), their bytes, and (only when a post is refused) the posts oldest first with their bytes."""

_COLUMNS = "id, thread_id, parent_id, author, kind, title, body, tags, snapshot, submission, score, created_at"
_SEARCH_TERM = re.compile(r"[\w-]+\*?", re.UNICODE)


def _fields(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    fields = dict(row)
    fields["tags"] = json.loads(fields["tags"])
    return fields


def _post(row: sqlite3.Row | Mapping[str, Any]) -> Post:
    return Post(**_fields(row))


def _summary(row: sqlite3.Row | Mapping[str, Any]) -> PostSummary:
    fields = _fields(row)
    body = fields.pop("body")
    fields["excerpt"] = body if len(body) <= EXCERPT_CHARS else body[: EXCERPT_CHARS - 1] + "…"
    return PostSummary(**fields)


def fts_query(text: str, max_terms: int = Settings.model_fields["forum_search_max_terms"].default) -> str:
    """Turn plain words into an FTS5 query matching all of them (a trailing * keeps prefix search).

    Repeated words count once, so no query costs more than `max_terms` distinct words."""
    terms = list(dict.fromkeys(term.lower() for term in _SEARCH_TERM.findall(text)))
    if not terms:
        raise ToolInputError(f"search query {text!r} has no words to search for: give one or more words")
    if len(terms) > max_terms:
        raise LimitError(
            f"search query has {len(terms)} different words, over the limit of {max_terms}"
            " (setting AAR_FORUM_SEARCH_MAX_TERMS): search for the few most specific ones"
        )
    quoted = []
    for term in terms:
        prefix = term.endswith("*")
        word = term.rstrip("*")
        if prefix and len(word) < MIN_PREFIX_CHARS:
            raise ToolInputError(f"the prefix {term!r} is too short: give at least {MIN_PREFIX_CHARS} letters before *")
        quoted.append(f'"{word}"' + ("*" if prefix else ""))
    return " ".join(quoted)


@dataclass(frozen=True)
class ForumLimits:
    """What one search may cost and how much one agent may write (None: no limit); see the forum_* settings."""

    search_max_terms: int
    search_candidates: int
    search_budget_s: float
    thread_page_chars: int
    posts_per_minute: int | None
    post_bytes_per_hour: int | None
    votes_per_minute: int | None

    @classmethod
    def of(cls, settings: Settings, *, limit_writes: bool = True) -> ForumLimits:
        return cls(
            search_max_terms=settings.forum_search_max_terms,
            search_candidates=settings.forum_search_candidates,
            search_budget_s=settings.forum_search_budget_ms / 1000,
            thread_page_chars=settings.forum_thread_page_chars,
            posts_per_minute=settings.forum_posts_per_minute if limit_writes else None,
            post_bytes_per_hour=settings.forum_post_bytes_per_hour if limit_writes else None,
            votes_per_minute=settings.forum_votes_per_minute if limit_writes else None,
        )


class SearchBudget:
    """The CPU time one search may spend in SQLite, counted in the reader's own thread.

    Waiting for a free reader or for a core of a busy machine costs the search nothing, so the
    budget stops costly queries, not ordinary ones that a loaded server answers late."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._spent = 0.0

    def stop_check(self) -> StopCheck:
        """The stop check of one read: adds the reader thread's CPU time between its calls to the total."""
        last: float | None = None

        def stop() -> bool:
            nonlocal last
            now = time.thread_time()
            if last is not None:
                self._spent += now - last
            last = now
            return self._spent >= self._seconds  # a budget of 0 stops a search at its first check

        return stop


def _limit_reached(what: str, setting: str, reset_at: float, now: float) -> LimitError:
    return LimitError(
        f"{what} (setting AAR_{setting.upper()}); it resets at {iso_utc(reset_at)},"
        f" in {max(1, round(reset_at - now))} s"
    )


class ForumStore:
    """All reads and writes of the forum."""

    def __init__(self, database: Database, limits: ForumLimits) -> None:
        self._database = database
        self._limits = limits

    @classmethod
    async def open(cls, path: Path, *, settings: Settings | None = None, synchronous: str | None = None) -> ForumStore:
        """The forum at `path`, with the limits an agent server enforces under `settings`.

        Without `settings` (the console, seeding) the process's settings apply, but no write
        limits: the operator is not an agent."""
        limits = ForumLimits.of(settings) if settings else ForumLimits.of(get_settings(), limit_writes=False)
        settings = settings or get_settings()
        database = await Database.open(
            path, SCHEMA, synchronous=synchronous or settings.sqlite_synchronous, readers=settings.sqlite_readers
        )
        await _index_prefixes(database)
        await _index_post_sizes(database)
        return cls(database, limits)

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
        """Insert a post (a reply when `parent_id` is given) and return it as stored, within the author's limits."""
        tags = sorted(set(tags))
        now = time.time()
        size = len(title.encode()) + len(body.encode())

        def insert(connection: sqlite3.Connection) -> sqlite3.Row:
            self._check_post_limits(connection, author, size, now)
            thread_id = None
            if parent_id is not None:
                parent = connection.execute("SELECT thread_id FROM posts WHERE id = ?", (parent_id,)).fetchone()
                if parent is None:
                    raise NotFoundError(f"no post with id {parent_id}: take an id from feed, search or read_thread")
                thread_id = parent["thread_id"]
            row: sqlite3.Row = connection.execute(
                "INSERT INTO posts (thread_id, parent_id, author, kind, title, body, tags, snapshot, submission,"
                f" created_at, bytes) VALUES (coalesce(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                (thread_id, parent_id, author, kind, title, body, json.dumps(tags), snapshot, submission, now, size),
            ).fetchall()[0]  # fetchall: a RETURNING statement left unfinished would block the COMMIT
            if thread_id is None:
                row = connection.execute(
                    f"UPDATE posts SET thread_id = id WHERE id = ? RETURNING {_COLUMNS}", (row["id"],)
                ).fetchall()[0]
            connection.executemany("INSERT INTO post_tags (tag, post_id) VALUES (?, ?)", [(t, row["id"]) for t in tags])
            return row

        return _post(await self._database.write(insert))

    def _check_post_limits(self, connection: sqlite3.Connection, author: str, size: int, now: float) -> None:
        """Refuse a post over the author's posts per minute or bytes per hour (counted from the posts stored).

        Both read the (author, created_at, bytes) index only, and the minute's count stops at the limit:
        a check costs the same for an agent that posted a thousand times this hour as for one that did not."""
        limits = self._limits
        if limits.posts_per_minute is None or limits.post_bytes_per_hour is None:
            return
        last_minute = connection.execute(RECENT_POSTS, (author, now - 60, limits.posts_per_minute)).fetchall()
        if len(last_minute) >= limits.posts_per_minute:
            reset_at = last_minute[-1][0] + 60
            what = f"you made {len(last_minute)} posts and replies in the last minute, the limit per agent"
            raise _limit_reached(f"{what} is {limits.posts_per_minute}", "forum_posts_per_minute", reset_at, now)
        if size > limits.post_bytes_per_hour:
            raise LimitError(
                f"this post is {size} bytes, over the {limits.post_bytes_per_hour} bytes an agent may post per hour"
                " (setting AAR_FORUM_POST_BYTES_PER_HOUR): post a summary and keep the data in a storage snapshot"
            )
        hour = (author, now - 3600)
        used = int(connection.execute(BYTES_POSTED, hour).fetchone()[0])
        if used + size <= limits.post_bytes_per_hour:
            return
        left, reset_at = used, now  # the limit is passed: when will enough of this hour's posts have aged out?
        for at, bytes_ in connection.execute(POSTS_AGING_OUT, hour):
            left -= bytes_
            reset_at = at + 3600
            if left + size <= limits.post_bytes_per_hour:
                break
        what = f"you posted {used} bytes in the last hour; with {size} more you would pass"
        what += f" the limit per agent of {limits.post_bytes_per_hour}"
        raise _limit_reached(what, "forum_post_bytes_per_hour", reset_at, now)

    def _check_vote_limit(self, connection: sqlite3.Connection, agent: str, now: float) -> None:
        """Refuse a vote over the agent's votes per minute, else record it for the count."""
        limit = self._limits.votes_per_minute
        if limit is None:
            return
        connection.execute("DELETE FROM vote_events WHERE agent = ? AND at <= ?", (agent, now - 60))
        recent = [row["at"] for row in connection.execute(
            "SELECT at FROM vote_events WHERE agent = ? ORDER BY at", (agent,)
        )]  # fmt: skip
        if len(recent) >= limit:
            what = f"you voted {len(recent)} times in the last minute, the limit per agent is {limit}"
            raise _limit_reached(what, "forum_votes_per_minute", recent[-limit] + 60, now)
        connection.execute("INSERT INTO vote_events (agent, at) VALUES (?, ?)", (agent, now))

    async def thread(self, post_id: int, *, offset: int = 0, limit: int = 20) -> Thread:
        """A thread's first post and a page of its replies, oldest first, of at most thread_page_chars of bodies."""
        row = await self._database.fetch_one("SELECT thread_id FROM posts WHERE id = ?", (post_id,))
        if row is None:
            raise NotFoundError(f"no post with id {post_id}: take an id from feed or search")
        thread_id = row["thread_id"]
        root = await self._database.fetch_one(f"SELECT {_COLUMNS} FROM posts WHERE id = ?", (thread_id,))
        counted = await self._database.fetch_one(
            "SELECT count(*) AS replies FROM posts WHERE thread_id = ? AND id != ?", (thread_id, thread_id)
        )
        rows = await self._database.fetch_all(
            f"SELECT {_COLUMNS} FROM posts WHERE thread_id = ? AND id != ? ORDER BY id LIMIT ? OFFSET ?",
            (thread_id, thread_id, limit, offset),
        )
        assert root is not None and counted is not None
        replies: list[Post] = []
        chars = 0
        for reply in rows:
            if replies and chars + len(reply["body"]) > self._limits.thread_page_chars:
                break
            replies.append(_post(reply))
            chars += len(reply["body"])
        end = offset + len(replies)
        return Thread(
            root=_post(root),
            replies=replies,
            offset=offset,
            total_replies=counted["replies"],
            next_offset=end if end < counted["replies"] else None,
        )

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
        """Best matches first among the newest `search_candidates` matches, within the search's CPU budget.

        Ranking every match of a word found in every post costs time in proportion to the forum;
        ranking only the newest few hundred keeps a search bounded, and a rarer word, with fewer
        matches than that, is ranked over all of them. Snippets are made for the hits only.
        """
        terms = fts_query(query, self._limits.search_max_terms)
        budget = SearchBudget(self._limits.search_budget_s)
        clauses, params = self._filters(tag, kind, author)
        where = " AND ".join(["posts_fts MATCH ?", *clauses])
        try:
            ranked = await self._database.fetch_all(
                "SELECT id, rank FROM (SELECT p.id AS id, bm25(posts_fts) AS rank"
                f" FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid WHERE {where}"
                " ORDER BY posts_fts.rowid DESC LIMIT ?) ORDER BY rank, id DESC LIMIT ?",
                [terms, *params, self._limits.search_candidates, limit],
                stop=budget.stop_check(),
            )
            if not ranked:
                return SearchResults(hits=[])
            ids = [row["id"] for row in ranked]
            columns = ", ".join(f"p.{c.strip()}" for c in _COLUMNS.split(","))
            # `+rowid IN` filters the rows FTS5 yields instead of seeking each id, which for a
            # prefix term would expand the prefix again for every hit.
            rows = await self._database.fetch_all(
                f"SELECT {columns}, snippet(posts_fts, -1, '[', ']', '…', 16) AS snippet"
                " FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid WHERE posts_fts MATCH ?"
                f" AND posts_fts.rowid >= ? AND +posts_fts.rowid IN ({', '.join('?' * len(ids))})",
                [terms, min(ids), *ids],
                stop=budget.stop_check(),
            )
        except ReadStopped as stopped:
            if str(stopped) == "closing":
                raise ToolInputError("the forum is shutting down: search again in a moment") from None
            raise LimitError(
                f"search stopped at its time budget of {round(self._limits.search_budget_s * 1000)} ms"
                " of CPU (setting AAR_FORUM_SEARCH_BUDGET_MS):"
                " search for fewer, more specific words, with fewer prefixes (word*)"
            ) from None
        found = {row["id"]: dict(row) for row in rows}
        hits = []
        for row in ranked:
            fields = found[row["id"]]
            snippet = fields.pop("snippet")
            hits.append(SearchHit(post=_summary(fields), snippet=snippet, rank=row["rank"]))
        return SearchResults(hits=hits)

    async def vote(self, *, post_id: int, agent: str, value: int) -> VoteResult:
        """Set `agent`'s vote on a post to +1 or -1, or withdraw it with 0; one vote per agent per post."""
        now = time.time()

        def cast(connection: sqlite3.Connection) -> int:
            self._check_vote_limit(connection, agent, now)
            if connection.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is None:
                raise NotFoundError(f"no post with id {post_id}: take an id from feed or search")
            if value == 0:
                connection.execute("DELETE FROM votes WHERE post_id = ? AND agent = ?", (post_id, agent))
            else:
                connection.execute(
                    "INSERT INTO votes (post_id, agent, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (post_id, agent) DO UPDATE SET value = excluded.value",
                    (post_id, agent, value),
                )
            row = connection.execute(
                "UPDATE posts SET score = (SELECT coalesce(sum(value), 0) FROM votes WHERE post_id = ?) WHERE id = ?"
                " RETURNING score",
                (post_id, post_id),
            ).fetchall()[0]
            return int(row["score"])

        return VoteResult(post_id=post_id, your_vote=value, score=await self._database.write(cast))


async def _index_prefixes(database: Database) -> None:
    """Rebuild the search index of a forum made before it kept prefixes (once; posts are unchanged)."""
    row = await database.fetch_one("SELECT sql FROM sqlite_master WHERE name = 'posts_fts'")
    if row is not None and "prefix=" not in row["sql"]:
        async with database.transaction() as connection:
            await connection.execute("DROP TABLE posts_fts")
            await connection.execute(FTS_TABLE)
            await connection.execute("INSERT INTO posts_fts (posts_fts) VALUES ('rebuild')")


async def _index_post_sizes(database: Database) -> None:
    """Keep each post's size in an index beside its author and time (the write limits sum it there), adding
    the sizes to a forum made before it kept them (once)."""
    columns = {row["name"] for row in await database.fetch_all("PRAGMA table_info(posts)")}
    async with database.transaction() as connection:
        if "bytes" not in columns:
            await connection.execute("ALTER TABLE posts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0")
            size = "length(CAST(title AS BLOB)) + length(CAST(body AS BLOB))"
            await connection.execute(f"UPDATE posts SET bytes = {size}")
            await connection.execute("DROP INDEX IF EXISTS posts_by_author_time")
        await connection.execute("CREATE INDEX IF NOT EXISTS posts_by_volume ON posts(author, created_at, bytes)")


DATA_FILE = "forum.sqlite"
_READER_COLUMNS = ", ".join(f"p.{column}" for column in _COLUMNS.split(", "))


class ForumReader:
    """The forum file opened read-only, for an operator's console: rows newest first, never a write.

    Rows are plain dicts (tags decoded, `created_at` Unix seconds) shaped for the console's pages."""

    def __init__(self, data_dir: Path) -> None:
        self._file = ReadOnlyFile(data_dir / DATA_FILE)

    def _posts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [_fields(row) for row in self._file.rows(sql, params)]

    def posts(
        self,
        *,
        query: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        author: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Posts newest first, or best match first for a full-text `query`, with the filters applied.

        Raises ToolInputError for a query without words."""
        clauses, params = [], []
        for clause, value in (
            ("p.kind = ?", kind),
            ("p.author = ?", author),
            ("p.id IN (SELECT post_id FROM post_tags WHERE tag = ?)", tag),
        ):
            if value:
                clauses.append(clause)
                params.append(value)
        if query:
            where = " AND ".join(["posts_fts MATCH ?", *clauses])
            sql = (
                f"SELECT {_READER_COLUMNS}, snippet(posts_fts, -1, '[', ']', '…', 16) AS snippet"
                f" FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid WHERE {where}"
                " ORDER BY bm25(posts_fts) LIMIT ? OFFSET ?"
            )
            params = [fts_query(query), *params]
        else:
            where = " AND ".join(clauses) or "1"
            sql = f"SELECT {_READER_COLUMNS} FROM posts p WHERE {where} ORDER BY p.id DESC LIMIT ? OFFSET ?"
        return self._posts(sql, [*params, limit, offset])

    def threads(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Threads (their first posts) with their reply counts, most recently active first."""
        sql = (
            f"SELECT {_READER_COLUMNS}, count(r.id) AS replies, max(coalesce(r.created_at, p.created_at)) AS active_at"
            " FROM posts p LEFT JOIN posts r ON r.thread_id = p.id AND r.id != p.id WHERE p.parent_id IS NULL"
            " GROUP BY p.id ORDER BY active_at DESC LIMIT ? OFFSET ?"
        )
        return self._posts(sql, [limit, offset])

    def thread(self, post_id: int) -> list[dict[str, Any]]:
        """The whole thread `post_id` belongs to, first post first; empty if there is no such post."""
        sql = (
            f"SELECT {_READER_COLUMNS} FROM posts p"
            " WHERE p.thread_id = (SELECT thread_id FROM posts WHERE id = ?) ORDER BY p.id"
        )
        return self._posts(sql, [post_id])

    def facets(self) -> dict[str, list[str]]:
        """The kinds, tags and authors there are, for the console's filters."""
        return {
            "kind": [row["kind"] for row in self._file.rows("SELECT DISTINCT kind FROM posts ORDER BY kind")],
            "tag": [row["tag"] for row in self._file.rows("SELECT DISTINCT tag FROM post_tags ORDER BY tag")],
            "author": [row["author"] for row in self._file.rows("SELECT DISTINCT author FROM posts ORDER BY 1")],
        }

    def last_posts(self) -> dict[str, dict[str, Any]]:
        """Each author's latest post."""
        sql = f"SELECT {_READER_COLUMNS} FROM posts p WHERE p.id IN (SELECT max(id) FROM posts GROUP BY author)"
        return {row["author"]: row for row in self._posts(sql)}

    def citing(self, submission_id: str, snapshot: str) -> list[dict[str, Any]]:
        """Posts that cite the submission or its snapshot, in their fields or in their text."""
        sql = (
            f"SELECT {_READER_COLUMNS} FROM posts p"
            " WHERE p.submission = ? OR p.snapshot = substr(?, 1, length(p.snapshot))"
            " OR p.id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?) ORDER BY p.id"
        )
        return self._posts(sql, [submission_id, snapshot, f'"{submission_id}"'])
