"""Which node each agent's jobs went to, kept on the head: a failed node's jobs stay reported as lost.

A job's own record lives on the node that runs it (its sandbox's jobs.sqlite), so when the node
fails the record goes with it. The head writes down every job it placed (id, name, command, node)
and marks those of a failed node lost, with the reason, so `job_status` and `list_jobs` still answer
after a restart of the sandbox server, including for a node that failed while the server was down.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite

from servers.kit.database import Database
from servers.sandbox.jobs import JobRecord
from servers.sandbox.models import JobState

__all__ = ["JobLedger"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS placed_jobs (
    agent TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    gpus INTEGER,
    node TEXT NOT NULL,
    created_at REAL NOT NULL,
    lost_at REAL,
    lost_reason TEXT,
    PRIMARY KEY (agent, id)
);
"""


class JobLedger:
    """Jobs placed on cluster nodes, per agent; at most `keep` per agent (the newest)."""

    def __init__(self, database: Database, keep: int) -> None:
        self._database = database
        self._keep = keep

    @classmethod
    async def open(cls, path: Path, keep: int) -> JobLedger:
        return cls(await Database.open(path, SCHEMA), keep)

    async def close(self) -> None:
        await self._database.close()

    async def record(self, agent: str, job_id: str, name: str, command: str, gpus: int | None, node: str) -> None:
        async with self._database.transaction() as connection:
            await connection.execute(
                "INSERT OR REPLACE INTO placed_jobs (agent, id, name, command, gpus, node, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (agent, job_id, name, command, gpus, node, time.time()),
            )
            await connection.execute(
                "DELETE FROM placed_jobs WHERE agent = ? AND id NOT IN"
                " (SELECT id FROM placed_jobs WHERE agent = ? ORDER BY created_at DESC LIMIT ?)",
                (agent, agent, self._keep),
            )

    async def mark_lost(self, agent: str, node: str, reason: str) -> int:
        """Mark the agent's jobs on `node` lost (those not marked already); how many were."""
        async with self._database.transaction() as connection:
            cursor = await connection.execute(
                "UPDATE placed_jobs SET lost_at = ?, lost_reason = ? WHERE agent = ? AND node = ? AND lost_at IS NULL",
                (time.time(), reason, agent, node),
            )
            return cursor.rowcount

    async def nodes(self, agent: str) -> set[str]:
        """The nodes holding the agent's jobs that are not marked lost."""
        rows = await self._database.fetch_all(
            "SELECT DISTINCT node FROM placed_jobs WHERE agent = ? AND lost_at IS NULL", (agent,)
        )
        return {row["node"] for row in rows}

    async def lost(self, agent: str) -> list[JobRecord]:
        """The agent's lost jobs, as job records."""
        rows = await self._database.fetch_all(
            "SELECT * FROM placed_jobs WHERE agent = ? AND lost_at IS NOT NULL ORDER BY created_at", (agent,)
        )
        return [_record(row) for row in rows]

    async def lost_job(self, agent: str, job_id: str) -> JobRecord | None:
        """The agent's job `job_id` if it was lost with its node, else None."""
        row = await self._database.fetch_one(
            "SELECT * FROM placed_jobs WHERE agent = ? AND id = ? AND lost_at IS NOT NULL", (agent, job_id)
        )
        return None if row is None else _record(row)

    async def forget(self, agent: str, job_id: str) -> None:
        async with self._database.transaction() as connection:
            await connection.execute("DELETE FROM placed_jobs WHERE agent = ? AND id = ?", (agent, job_id))


def _record(row: aiosqlite.Row) -> JobRecord:
    return JobRecord(
        id=row["id"], owner=row["agent"], name=row["name"], command=row["command"], state=JobState.LOST,
        exit_code=None, limit_hit=None, error=row["lost_reason"], timeout_s=0.0, gpus=row["gpus"],
        created_at=row["created_at"], started_at=None, finished_at=row["lost_at"], log_path="",
    )  # fmt: skip
