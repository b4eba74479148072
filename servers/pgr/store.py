"""The PGR server's SQLite file: the submission queue and the append-only audit of every evaluation.

Agents cannot write metrics anywhere: every number on the leaderboard comes from a row the
server wrote after scoring predictions against labels only it holds.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers.kit.database import Database, ReadOnlyFile
from servers.pgr.models import QuickQuery, SubmissionRecord, TaskResult

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
    mode TEXT,
    code_sha256 TEXT,
    derived_from TEXT NOT NULL DEFAULT '[]',
    same_code_as TEXT,
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
CREATE TABLE IF NOT EXISTS budget_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS budget_by_kind ON budget_ledger(kind, created_at);
CREATE TABLE IF NOT EXISTS quick_queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    agent TEXT NOT NULL,
    predictions TEXT NOT NULL,
    accuracy REAL NOT NULL,
    pgr REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quick_by_task ON quick_queries(task, id);
CREATE TRIGGER IF NOT EXISTS evaluations_append_only_update BEFORE UPDATE ON evaluations
BEGIN SELECT RAISE(ABORT, 'the evaluation audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evaluations_append_only_delete BEFORE DELETE ON evaluations
BEGIN SELECT RAISE(ABORT, 'the evaluation audit is append-only'); END;
"""

MIGRATIONS = {
    "submissions": {
        "mode": "TEXT",
        "code_sha256": "TEXT",
        "derived_from": "TEXT NOT NULL DEFAULT '[]'",
        "same_code_as": "TEXT",
    }
}
"""Columns added since the first release: added to older files when they are opened."""

FAIR_ORDER = "(SELECT coalesce(max(t.started_at), 0) FROM submissions t WHERE t.agent = s.agent), s.seq"
"""The queue's order: the agent served longest ago first (round-robin), then first come."""

ACTIVE_STATES = ("queued", "running")
QUARANTINABLE = ("done", "flagged")
"""States a person may quarantine: scored submissions, official or flagged."""
OFFICIAL = "state = 'done' AND pgr_mean IS NOT NULL"
"""Which submissions are on the leaderboard: scored, not flagged, not quarantined."""


def submission_record(row: Any) -> SubmissionRecord:
    """A `submissions` row, its JSON columns decoded."""
    fields = dict(row)
    for column in ("results", "flags", "derived_from"):
        fields[column] = json.loads(fields[column])
    return SubmissionRecord.model_validate(fields)


@dataclass(frozen=True)
class Refusal:
    """Why a budget refused: whose limit (the agent's or the team's) and when a slot frees."""

    scope: str
    limit: int
    resets_at: float


class PgrStore:
    """Submissions and evaluations."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "NORMAL") -> PgrStore:
        database = await Database.open(path, SCHEMA, synchronous=synchronous)
        await database.add_columns(MIGRATIONS)
        return cls(database)

    async def reserve(self, agent: str, kind: str, *, per_agent: int, per_team: int, window_s: float) -> Refusal | None:
        """Take one unit of a budget, atomically, for the agent and the team; a Refusal if either is spent."""
        now = time.time()
        since = now - window_s
        async with self._database.transaction() as connection:
            for scope, limit, where, params in (
                ("agent", per_agent, "agent = ? AND kind = ?", (agent, kind)),
                ("team", per_team, "kind = ?", (kind,)),
            ):
                cursor = await connection.execute(
                    f"SELECT count(*), min(created_at) FROM budget_ledger WHERE {where} AND created_at >= ?",
                    (*params, since),
                )
                used, oldest = await cursor.fetchone()  # type: ignore[misc]
                if used >= limit:
                    return Refusal(scope, limit, (oldest or now) + window_s)
            await connection.execute(
                "INSERT INTO budget_ledger (agent, kind, created_at) VALUES (?, ?, ?)", (agent, kind, now)
            )
        return None

    async def budget_used(self, agent: str, kind: str, since: float) -> tuple[int, int]:
        """Units of a budget used since `since`: (by the agent, by the whole team)."""
        row = await self._database.fetch_one(
            "SELECT count(*) AS team, coalesce(sum(agent = ?), 0) AS mine FROM budget_ledger"
            " WHERE kind = ? AND created_at >= ?",
            (agent, kind, since),
        )
        return (int(row["mine"]), int(row["team"])) if row else (0, 0)

    async def quick_queries(self, task: str) -> list[QuickQuery]:
        """Every quick query the team made on a task: predictions and the answer it got."""
        rows = await self._database.fetch_all(
            "SELECT predictions, accuracy, pgr FROM quick_queries WHERE task = ? ORDER BY id", (task,)
        )
        return [QuickQuery(row["predictions"], row["accuracy"], row["pgr"]) for row in rows]

    async def record_quick_query(
        self, *, task: str, agent: str, predictions: str, accuracy: float, pgr: float | None
    ) -> None:
        async with self._database.transaction() as connection:
            await connection.execute(
                "INSERT INTO quick_queries (task, agent, predictions, accuracy, pgr, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (task, agent, predictions, accuracy, pgr, time.time()),
            )

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

    async def create_submission(
        self,
        *,
        agent: str,
        snapshot: str,
        entry_point: str,
        code_sha256: str,
        derived_from: list[str],
        same_code_as: str | None,
    ) -> SubmissionRecord:
        submission_id = "sub_" + secrets.token_hex(6)
        async with self._database.transaction() as connection:
            await connection.execute(
                "INSERT INTO submissions (id, seq, agent, snapshot, entry_point, state, code_sha256, derived_from,"
                " same_code_as, created_at)"
                " VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM submissions), ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (
                    submission_id, agent, snapshot, entry_point, code_sha256, json.dumps(derived_from),
                    same_code_as, time.time(),
                ),
            )  # fmt: skip
        return await self.submission(submission_id)  # type: ignore[return-value]

    async def first_with_code(self, code_sha256: str) -> SubmissionRecord | None:
        """The earliest submission of exactly this code (after normalisation), if any."""
        row = await self._database.fetch_one(
            "SELECT * FROM submissions WHERE code_sha256 = ? ORDER BY seq LIMIT 1", (code_sha256,)
        )
        return None if row is None else submission_record(row)

    async def submission(self, submission_id: str) -> SubmissionRecord | None:
        row = await self._database.fetch_one("SELECT * FROM submissions WHERE id = ?", (submission_id,))
        return None if row is None else submission_record(row)

    async def next_queued(self, *, busy: Collection[str] = ()) -> SubmissionRecord | None:
        """The submission to run next, of an agent not in `busy` (those with one running already)."""
        row = await self._database.fetch_one(
            f"SELECT s.* FROM submissions s WHERE s.state = 'queued' AND s.agent NOT IN ({', '.join('?' * len(busy))})"
            f" ORDER BY {FAIR_ORDER} LIMIT 1",
            list(busy),
        )
        return None if row is None else submission_record(row)

    async def requeue_running(self) -> int:
        """After a restart: submissions that were running are run again from the start."""
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE submissions SET state = 'queued', progress_done = 0, started_at = NULL WHERE state = 'running'"
            )
            return cursor.rowcount

    async def update(self, submission_id: str, **fields: Any) -> None:
        """Set columns of a submission; `results` is a list of `TaskResult`."""
        if "results" in fields:
            fields["results"] = json.dumps(
                [TaskResult.model_validate(result).model_dump() for result in fields["results"]]
            )
        if "flags" in fields:
            fields["flags"] = json.dumps(fields["flags"])
        assignments = ", ".join(f"{key} = ?" for key in fields)
        async with self._database.transaction() as connection:
            await connection.execute(
                f"UPDATE submissions SET {assignments} WHERE id = ?", (*fields.values(), submission_id)
            )

    async def quarantine(self, submission_id: str, by: str) -> SubmissionRecord:
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
        if not changed and submission.state != "quarantined":
            raise ValueError(f"submission {submission_id} is {submission.state}: only scored ones can be quarantined")
        return submission

    async def queue_position(self, submission_id: str) -> int:
        """Submissions that will run before this one as the queue stands (running ones included)."""
        rows = await self._database.fetch_all(
            f"SELECT s.id, s.state FROM submissions s WHERE s.state IN ('queued', 'running') ORDER BY"
            f" s.state = 'queued', {FAIR_ORDER}"
        )
        ids = [row["id"] for row in rows]
        return ids.index(submission_id) if submission_id in ids else 0

    async def leaderboard(self, limit: int) -> list[SubmissionRecord]:
        """Official rows only: finished, unflagged, not quarantined; best first."""
        rows = await self._database.fetch_all(
            f"SELECT * FROM submissions WHERE {OFFICIAL} ORDER BY pgr_mean DESC, finished_at LIMIT ?",
            (limit,),
        )
        return [submission_record(row) for row in rows]

    async def submissions(self, *, agent: str | None = None, limit: int = 100) -> list[SubmissionRecord]:
        if agent is None:
            rows = await self._database.fetch_all("SELECT * FROM submissions ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = await self._database.fetch_all(
                "SELECT * FROM submissions WHERE agent = ? ORDER BY seq DESC LIMIT ?", (agent, limit)
            )
        return [submission_record(row) for row in rows]


DATA_FILE = "pgr.sqlite"
RUNNER_MODES = ("frozen", "finetune")
"""The strong-model modes submissions run in (servers.w2s.api.StrongMode), each in a sandbox of its own."""


def runner_data_dir(data_dir: Path, mode: str) -> Path:
    """The data directory of the server's own sandbox for submission runs of one mode."""
    return data_dir / "pgr" / mode


def _submission_fields(row: Any) -> dict[str, Any]:
    """A `submissions` row as the console reads it: the record's fields, JSON columns decoded."""
    return submission_record(row).model_dump()


class PgrReader:
    """The PGR server's file opened read-only, for an operator's console: never a write."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file = ReadOnlyFile(data_dir / DATA_FILE)

    def submissions(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Submissions in the order they were made (of one state if given)."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = self._file.rows(f"SELECT * FROM submissions {where} ORDER BY seq", params)
        return [_submission_fields(row) for row in rows]

    def submission(self, submission_id: str) -> dict[str, Any] | None:
        rows = self._file.rows("SELECT * FROM submissions WHERE id = ?", [submission_id])
        return _submission_fields(rows[0]) if rows else None

    def leaderboard(self) -> list[dict[str, Any]]:
        """Official rows only (what the leaderboard tool lists), best first."""
        sql = f"SELECT * FROM submissions WHERE {OFFICIAL} ORDER BY pgr_mean DESC, finished_at"
        return [_submission_fields(row) for row in self._file.rows(sql)]

    def refused_evaluations(self) -> list[dict[str, Any]]:
        """Quick evaluations refused for the hourly budget (the audit keeps each attempt)."""
        return self._file.rows("SELECT * FROM evaluations WHERE kind = 'refused' ORDER BY id DESC")

    def runner_data_dirs(self) -> dict[str, Path]:
        """Mode -> data directory of the sandbox its submissions run in."""
        return {mode: runner_data_dir(self.data_dir, mode) for mode in RUNNER_MODES}
