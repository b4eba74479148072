"""What the console reads of the servers' data under a run directory, read-only and newest first.

The servers a run launches keep their SQLite files in RUN/servers/. The console opens them
read-only (WAL lets it read while the servers write) with queries shaped for its pages; it never
writes through these connections. A file that does not exist yet (servers still starting, or a run
that connected to servers elsewhere) reads as empty.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servers.forum.store import fts_query
from servers.pgr.store import OFFICIAL, submission_record

FORUM_FILE = "forum.sqlite"
PGR_FILE = "pgr.sqlite"
SANDBOX_JOB_FILES = {"agents' sandbox": "sandbox/jobs.sqlite", "submissions": "pgr/sandbox/jobs.sqlite"}
_POST_COLUMNS = ", ".join(
    f"p.{column}"
    for column in (
        "id", "thread_id", "parent_id", "author", "kind", "title", "body", "tags", "snapshot", "submission", "score",
        "created_at",
    )
)  # fmt: skip


def iso(timestamp: float | None) -> str:
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _post(row: dict[str, Any]) -> dict[str, Any]:
    row["tags"] = json.loads(row["tags"])
    return row


class ServerData:
    """Read-only queries over the forum, PGR and sandbox files of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def _rows(self, file: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        path = self.data_dir / file
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as connection:
            connection.row_factory = sqlite3.Row
            try:
                return [dict(row) for row in connection.execute(sql, params)]
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):  # created, schema not applied yet
                    return []
                raise

    # forum

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
                f"SELECT {_POST_COLUMNS}, snippet(posts_fts, -1, '[', ']', '…', 16) AS snippet"
                f" FROM posts_fts JOIN posts p ON p.id = posts_fts.rowid WHERE {where}"
                " ORDER BY bm25(posts_fts) LIMIT ? OFFSET ?"
            )
            params = [fts_query(query), *params]
        else:
            where = " AND ".join(clauses) or "1"
            sql = f"SELECT {_POST_COLUMNS} FROM posts p WHERE {where} ORDER BY p.id DESC LIMIT ? OFFSET ?"
        return [_post(row) for row in self._rows(FORUM_FILE, sql, [*params, limit, offset])]

    def threads(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Threads (their first posts) with their reply counts, most recently active first."""
        sql = (
            f"SELECT {_POST_COLUMNS}, count(r.id) AS replies, max(coalesce(r.created_at, p.created_at)) AS active_at"
            " FROM posts p LEFT JOIN posts r ON r.thread_id = p.id AND r.id != p.id WHERE p.parent_id IS NULL"
            " GROUP BY p.id ORDER BY active_at DESC LIMIT ? OFFSET ?"
        )
        return [_post(row) for row in self._rows(FORUM_FILE, sql, [limit, offset])]

    def thread(self, post_id: int) -> list[dict[str, Any]]:
        """The whole thread `post_id` belongs to, first post first; empty if there is no such post."""
        sql = (
            f"SELECT {_POST_COLUMNS} FROM posts p WHERE p.thread_id = (SELECT thread_id FROM posts WHERE id = ?)"
            " ORDER BY p.id"
        )
        return [_post(row) for row in self._rows(FORUM_FILE, sql, [post_id])]

    def forum_facets(self) -> dict[str, list[str]]:
        """The kinds, tags and authors there are, for the forum's filters."""
        return {
            "kind": [r["kind"] for r in self._rows(FORUM_FILE, "SELECT DISTINCT kind FROM posts ORDER BY kind")],
            "tag": [r["tag"] for r in self._rows(FORUM_FILE, "SELECT DISTINCT tag FROM post_tags ORDER BY tag")],
            "author": [r["author"] for r in self._rows(FORUM_FILE, "SELECT DISTINCT author FROM posts ORDER BY 1")],
        }

    def last_posts(self) -> dict[str, dict[str, Any]]:
        """Each author's latest post."""
        sql = f"SELECT {_POST_COLUMNS} FROM posts p WHERE p.id IN (SELECT max(id) FROM posts GROUP BY author)"
        return {row["author"]: _post(row) for row in self._rows(FORUM_FILE, sql)}

    def citing_posts(self, submission_id: str, snapshot: str) -> list[dict[str, Any]]:
        """Posts that cite the submission or its snapshot, in their fields or in their text."""
        sql = (
            f"SELECT {_POST_COLUMNS} FROM posts p"
            " WHERE p.submission = ? OR p.snapshot = substr(?, 1, length(p.snapshot))"
            " OR p.id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?) ORDER BY p.id"
        )
        return [_post(row) for row in self._rows(FORUM_FILE, sql, [submission_id, snapshot, f'"{submission_id}"'])]

    # pgr

    def submissions(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Submissions in the order they were made (of one state if given)."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = self._rows(PGR_FILE, f"SELECT * FROM submissions {where} ORDER BY seq", params)
        return [submission_record(row).model_dump() for row in rows]

    def submission(self, submission_id: str) -> dict[str, Any] | None:
        rows = self._rows(PGR_FILE, "SELECT * FROM submissions WHERE id = ?", [submission_id])
        return submission_record(rows[0]).model_dump() if rows else None

    def leaderboard(self) -> list[dict[str, Any]]:
        """Official rows only (what the PGR server's leaderboard lists), best first."""
        sql = f"SELECT * FROM submissions WHERE {OFFICIAL} ORDER BY pgr_mean DESC, finished_at"
        return [submission_record(row).model_dump() for row in self._rows(PGR_FILE, sql)]

    def refused_evaluations(self) -> list[dict[str, Any]]:
        """Quick evaluations refused for the hourly budget (the audit keeps each attempt)."""
        return self._rows(PGR_FILE, "SELECT * FROM evaluations WHERE kind = 'refused' ORDER BY id DESC")

    # sandbox

    def limit_hits(self) -> list[dict[str, Any]]:
        """Background jobs a sandbox limit ended, in the agents' sandbox and in the submissions' one."""
        hits = []
        for where, file in SANDBOX_JOB_FILES.items():
            rows = self._rows(file, "SELECT * FROM jobs WHERE limit_hit IS NOT NULL ORDER BY seq DESC")
            hits += [{**row, "sandbox": where} for row in rows]
        return sorted(hits, key=lambda row: row["created_at"], reverse=True)
