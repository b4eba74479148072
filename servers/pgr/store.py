"""The PGR server's SQLite file: the submission queue and the append-only audit of every evaluation.

Agents cannot write metrics anywhere: every number on the leaderboard comes from a row the
server wrote after scoring predictions against labels only it holds.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from servers.kit.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    agent TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    entry_point TEXT NOT NULL,
    state TEXT NOT NULL,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    pgr_mean REAL,
    results TEXT NOT NULL DEFAULT '[]',
    flags TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    quarantined_by TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS submissions_by_state ON submissions(state, seq);
CREATE INDEX IF NOT EXISTS submissions_by_agent ON submissions(agent, created_at);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    submission_id TEXT,
    seed INTEGER,
    control TEXT NOT NULL DEFAULT 'none',
    predictions_sha256 TEXT NOT NULL,
    accuracy REAL,
    pgr REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_agent ON evaluations(agent, kind, created_at);
CREATE TRIGGER IF NOT EXISTS evaluations_append_only_update BEFORE UPDATE ON evaluations
BEGIN SELECT RAISE(ABORT, 'the evaluation audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evaluations_append_only_delete BEFORE DELETE ON evaluations
BEGIN SELECT RAISE(ABORT, 'the evaluation audit is append-only'); END;
"""

ACTIVE_STATES = ("queued", "running")
QUARANTINABLE = ("done", "flagged")
"""States a person may quarantine: scored submissions, official or flagged."""
OFFICIAL = "state = 'done' AND pgr_mean IS NOT NULL"
"""Which submissions are on the leaderboard: scored, not flagged, not quarantined."""


def submission_fields(row: Any) -> dict[str, Any]:
    """A `submissions` row as a dict, its JSON columns decoded."""
    fields = dict(row)
    fields["results"] = json.loads(fields["results"])
    fields["flags"] = json.loads(fields["flags"])
    return fields


class PgrStore:
    """Submissions and evaluations."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "NORMAL") -> PgrStore:
        return cls(await Database.open(path, SCHEMA, synchronous=synchronous))

    async def close(self) -> None:
        await self._database.close()

    async def record_evaluation(
        self,
        *,
        agent: str,
        kind: str,
        task: str,
        split: str,
        predictions_sha256: str,
        accuracy: float | None,
        pgr: float | None,
        submission_id: str | None = None,
        seed: int | None = None,
        control: str = "none",
    ) -> None:
        async with self._database.transaction() as connection:
            await connection.execute(
                "INSERT INTO evaluations (agent, kind, task, split, submission_id, seed, control, predictions_sha256,"
                " accuracy, pgr, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent,
                    kind,
                    task,
                    split,
                    submission_id,
                    seed,
                    control,
                    predictions_sha256,
                    accuracy,
                    pgr,
                    time.time(),
                ),
            )

    async def count_evaluations(self, agent: str, kind: str, since: float) -> int:
        """How many evaluations of one kind (quick, refused, ...) an agent made since `since`."""
        row = await self._database.fetch_one(
            "SELECT count(*) AS n FROM evaluations WHERE agent = ? AND kind = ? AND created_at >= ?",
            (agent, kind, since),
        )
        return int(row["n"]) if row else 0

    async def count_submissions(self, agent: str, since: float) -> int:
        row = await self._database.fetch_one(
            "SELECT count(*) AS n FROM submissions WHERE agent = ? AND created_at >= ?", (agent, since)
        )
        return int(row["n"]) if row else 0

    async def create_submission(self, *, agent: str, snapshot: str, entry_point: str, total: int) -> dict[str, Any]:
        submission_id = "sub_" + secrets.token_hex(6)
        async with self._database.transaction() as connection:
            await connection.execute(
                "INSERT INTO submissions (id, seq, agent, snapshot, entry_point, state, progress_total, created_at)"
                " VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM submissions), ?, ?, ?, 'queued', ?, ?)",
                (submission_id, agent, snapshot, entry_point, total, time.time()),
            )
        return await self.submission(submission_id)  # type: ignore[return-value]

    async def submission(self, submission_id: str) -> dict[str, Any] | None:
        row = await self._database.fetch_one("SELECT * FROM submissions WHERE id = ?", (submission_id,))
        return None if row is None else submission_fields(row)

    async def next_queued(self) -> dict[str, Any] | None:
        row = await self._database.fetch_one("SELECT * FROM submissions WHERE state = 'queued' ORDER BY seq LIMIT 1")
        return None if row is None else submission_fields(row)

    async def requeue_running(self) -> int:
        """After a restart: submissions that were running are run again from the start."""
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE submissions SET state = 'queued', progress_done = 0, started_at = NULL WHERE state = 'running'"
            )
            return cursor.rowcount

    async def update(self, submission_id: str, **fields: Any) -> None:
        for key in ("results", "flags"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        assignments = ", ".join(f"{key} = ?" for key in fields)
        async with self._database.transaction() as connection:
            await connection.execute(
                f"UPDATE submissions SET {assignments} WHERE id = ?", (*fields.values(), submission_id)
            )

    async def quarantine(self, submission_id: str, by: str) -> dict[str, Any]:
        """Take a scored submission off the leaderboard on a person's word; raises ValueError if it cannot be."""
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE submissions SET state = 'quarantined', quarantined_by = ? WHERE id = ? AND state IN (?, ?)",
                (by, submission_id, *QUARANTINABLE),
            )
            changed = cursor.rowcount
        submission = await self.submission(submission_id)
        if submission is None:
            raise ValueError(f"no submission {submission_id!r}")
        if not changed and submission["state"] != "quarantined":
            raise ValueError(
                f"submission {submission_id} is {submission['state']}: only scored ones can be quarantined"
            )
        return submission

    async def queue_position(self, submission_id: str) -> int:
        row = await self._database.fetch_one(
            "SELECT count(*) AS n FROM submissions WHERE state IN ('queued', 'running')"
            " AND seq < (SELECT seq FROM submissions WHERE id = ?)",
            (submission_id,),
        )
        return int(row["n"]) if row else 0

    async def leaderboard(self, limit: int) -> list[dict[str, Any]]:
        """Official rows only: finished, unflagged, not quarantined; best first."""
        rows = await self._database.fetch_all(
            f"SELECT * FROM submissions WHERE {OFFICIAL} ORDER BY pgr_mean DESC, finished_at LIMIT ?",
            (limit,),
        )
        return [submission_fields(row) for row in rows]

    async def submissions(self, *, agent: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if agent is None:
            rows = await self._database.fetch_all("SELECT * FROM submissions ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = await self._database.fetch_all(
                "SELECT * FROM submissions WHERE agent = ? ORDER BY seq DESC LIMIT ?", (agent, limit)
            )
        return [submission_fields(row) for row in rows]
