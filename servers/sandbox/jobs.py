"""Background jobs: durable records in SQLite, fair scheduling, logs the agent cannot touch.

A job belongs to the service, not to the request that started it: it runs in a task of the
service and its record survives restarts. Scheduling queues jobs FIFO per agent and gives each free
slot to the agent with the fewest running jobs (then the one whose last start is oldest), within a
per-agent and a global cap on running jobs, so agents that fill their share never delay one that
runs nothing; an agent whose queue is full gets an error. Finished jobs are kept, record and log,
for the last `job_history_per_agent` of each agent and at most `job_history_days`, so an agent
stores at most that many plus its queued and running ones. On open, jobs recorded as running (the
previous service died under them, and --die-with-parent took their processes with it) are marked
lost, and queued jobs are started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite

from servers.kit.database import Database, ReadOnlyFile
from servers.sandbox.errors import CapacityError, NotFoundError, ToolInputError
from servers.sandbox.limits import SandboxLimits, naming
from servers.sandbox.models import Job, JobLog, JobState
from servers.sandbox.runner import LogFile, Outcome, Run

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    timeout_s REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'lost')),
    exit_code INTEGER,
    limit_hit TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    log_path TEXT NOT NULL,
    gpus INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
"""
MIGRATIONS = {"jobs": {"gpus": "INTEGER"}}
"""Columns added since the first release: added to older files when they are opened."""
LOST_MESSAGE = "the sandbox service stopped while the job was running"
TAIL_BYTES = 16 * 1024


class JobRecord(Job):
    """A job as the service keeps it: the agent's view plus its owner and the host path of its log."""

    owner: str
    log_path: str

    def public(self) -> Job:
        """What the owning agent is shown (no host paths)."""
        return Job(**{name: getattr(self, name) for name in Job.model_fields})


RunFactory = Callable[[str, str, float, int | None], Run]
"""(owner, command, timeout_s, gpus) -> a Run ready to execute in the owner's workspace."""


class JobManager:
    """Owns every job of one service: records, queue, running tasks, logs."""

    def __init__(self, db: Database, limits: SandboxLimits, log_dir: Path, make_run: RunFactory) -> None:
        self._db = db
        self._limits = limits
        self._log_dir = log_dir
        self._make_run = make_run
        self._lock = asyncio.Lock()
        self._running: dict[str, tuple[str, Run, asyncio.Task[None]]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._last_start: dict[str, float] = {}
        """Agent -> Unix time of its latest job start (the tie-break between agents running as many jobs)."""
        self._closing = False

    @classmethod
    async def open(cls, db_path: Path, limits: SandboxLimits, log_dir: Path, make_run: RunFactory) -> JobManager:
        db = await Database.open(db_path, SCHEMA)
        await db.add_columns(MIGRATIONS)
        manager = cls(db, limits, log_dir, make_run)
        async with db.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE jobs SET state = 'lost', error = ?, finished_at = ? WHERE state = 'running'",
                (LOST_MESSAGE, time.time()),
            )
            if cursor.rowcount:
                logger.warning("%d job(s) were running when the service stopped; marked lost", cursor.rowcount)
        rows = await db.fetch_all("SELECT owner, MAX(started_at) AS last FROM jobs GROUP BY owner")
        manager._last_start = {row["owner"]: row["last"] or 0.0 for row in rows}
        for owner in manager._last_start:
            await manager.forget_old_jobs(owner)
        await manager._schedule()
        return manager

    async def close(self) -> None:
        """Stop running jobs (they are recorded as lost, as after a crash) and close the database."""
        self._closing = True
        tasks = []
        for _, run, task in self._running.values():
            run.cancel(immediately=True)  # recorded as lost either way; a stop must not wait out grace periods
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=self._limits.kill_grace_s + 10)
        await self._db.close()

    async def submit(self, owner: str, name: str, command: str, timeout_s: float, gpus: int | None = None) -> JobRecord:
        """Record a job as queued and start it if a slot is free."""
        async with self._lock:
            row = await self._db.fetch_one(
                "SELECT COUNT(*) AS n FROM jobs WHERE owner = ? AND state = 'queued'", (owner,)
            )
            queued = row["n"] if row else 0
            if queued >= self._limits.max_queued_jobs_per_agent:
                raise CapacityError(
                    f"you already have {queued} jobs queued (limit {self._limits.max_queued_jobs_per_agent}) behind "
                    f"{self._limits.max_running_jobs_per_agent} running; wait for one to finish or cancel one"
                    + naming("max_queued_jobs_per_agent")
                )
            job_id = secrets.token_hex(6)
            log_path = self._log_dir / owner / f"{job_id}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.touch()
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO jobs (id, owner, name, command, timeout_s, gpus, state, created_at, log_path)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (job_id, owner, name, command, timeout_s, gpus, time.time(), str(log_path)),
                )
            self._done[job_id] = asyncio.Event()
        await self._schedule()
        return await self.get(owner, job_id)

    async def get(self, owner: str, job_id: str) -> JobRecord:
        row = await self._db.fetch_one("SELECT * FROM jobs WHERE id = ? AND owner = ?", (job_id, owner))
        if row is None:
            raise NotFoundError(
                f"no job {job_id!r} of yours; list_jobs shows your jobs (finished jobs are kept for your last "
                f"{self._limits.job_history_per_agent} and at most {self._limits.job_history_days:g} days)"
            )
        return _info(row)

    async def list(self, owner: str) -> list[JobRecord]:
        rows = await self._db.fetch_all("SELECT * FROM jobs WHERE owner = ? ORDER BY seq", (owner,))
        return [_info(row) for row in rows]

    async def wait(self, owner: str, job_id: str, timeout_s: float | None = None) -> JobRecord:
        """The job once it has finished, or as it is when `timeout_s` runs out."""
        await self.get(owner, job_id)
        event = self._done.setdefault(job_id, asyncio.Event())
        job = await self.get(owner, job_id)
        if not job.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout_s)
            job = await self.get(owner, job_id)
        return job

    async def cancel(self, owner: str, job_id: str) -> JobRecord:
        """Cancel a queued job, or stop a running one (SIGTERM, grace period, SIGKILL of its whole tree)."""
        async with self._lock:
            job = await self.get(owner, job_id)
            if job.state is JobState.QUEUED:
                await self._finish(job_id, JobState.CANCELLED, None, None, "cancelled before it started")
                self._signal_done(job_id)
                return await self.get(owner, job_id)
            entry = self._running.get(job_id)
        if entry is not None:
            _, run, task = entry
            run.cancel()
            await asyncio.wait({task}, timeout=self._limits.kill_grace_s + 10)
        return await self.get(owner, job_id)

    async def delete(self, owner: str, job_id: str) -> JobRecord:
        """Forget a finished job, record and log, freeing its share of the owner's disk quota."""
        async with self._lock:
            job = await self.get(owner, job_id)
            if not job.finished:
                raise ToolInputError(f"job {job_id!r} is {job.state.value}; cancel_job it first, then delete it")
            await self._db.execute_many([("DELETE FROM jobs WHERE id = ?", (job_id,))])
        Path(job.log_path).unlink(missing_ok=True)  # noqa: ASYNC240 one unlink of a local log file
        return job

    async def logs(self, owner: str, job_id: str, offset: int | None, limit: int) -> JobLog:
        """From `offset` up to `limit` bytes, or (offset None) the last TAIL_BYTES; pass next_offset to follow."""
        job = await self.get(owner, job_id)
        path = Path(job.log_path)
        size = path.stat().st_size if path.exists() else 0  # noqa: ASYNC240 a stat of a local log file
        start = max(0, size - min(TAIL_BYTES, limit)) if offset is None else min(max(0, offset), size)
        data = b""
        if size > start:
            with open(path, "rb") as handle:  # noqa: ASYNC230 a read of at most `limit` bytes of a local log file
                handle.seek(start)
                data = handle.read(limit)
        text = data.decode("utf-8", errors="replace")
        return JobLog(
            job_id=job_id, offset=start, next_offset=start + len(data), size=size, text=text, complete=job.finished
        )

    async def _schedule(self) -> None:
        """Start queued jobs while slots are free, round-robin between agents, FIFO within one."""
        if self._closing:
            return
        async with self._lock:
            rows = await self._db.fetch_all("SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq")
            queues: dict[str, list[JobRecord]] = {}
            for row in rows:
                queues.setdefault(row["owner"], []).append(_info(row))
            running = Counter(owner for owner, _, _ in self._running.values())
            while len(self._running) < self._limits.max_running_jobs_total:
                ready = [
                    owner
                    for owner, jobs in queues.items()
                    if jobs and running[owner] < self._limits.max_running_jobs_per_agent
                ]
                if not ready:
                    break
                owner = min(ready, key=lambda name: (running[name], self._last_start.get(name, 0.0)))
                job = queues[owner].pop(0)
                running[owner] += 1
                await self._start(job)

    async def _start(self, job: JobRecord) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("UPDATE jobs SET state = 'running', started_at = ? WHERE id = ?", (time.time(), job.id))
        self._last_start[job.owner] = time.time()
        self._done.setdefault(job.id, asyncio.Event())
        run = self._make_run(job.owner, job.command, job.timeout_s, job.gpus)
        task = asyncio.create_task(self._run(job, run), name=f"sandbox-job-{job.id}")
        self._running[job.id] = (job.owner, run, task)

    async def _run(self, job: JobRecord, run: Run) -> None:
        log = LogFile(Path(job.log_path), self._limits.job_log_bytes)
        try:
            outcome = await run.execute(log, None)
        except Exception:
            logger.exception("job %s crashed in the service", job.id)
            outcome = Outcome(None, None, "the sandbox service failed to run the job", False, 0.0)
        finally:
            log.close()
        error: str | None
        if self._closing:
            state, error = JobState.LOST, LOST_MESSAGE
        elif outcome.cancelled:
            state, error = JobState.CANCELLED, outcome.error
        elif outcome.exit_code == 0 and outcome.error is None:
            state, error = JobState.SUCCEEDED, None
        else:
            state, error = JobState.FAILED, outcome.error
        async with self._lock:
            await self._finish(job.id, state, outcome.exit_code, outcome.limit.value if outcome.limit else None, error)
            self._running.pop(job.id, None)
        logger.info("job %s of %s %s (exit %s, %s)", job.id, job.owner, state.value, outcome.exit_code, error or "ok")
        await self._schedule()
        self._signal_done(job.id)  # after scheduling, so a waiter sees the freed slot already reassigned

    async def forget_old_jobs(self, owner: str) -> None:
        """Delete `owner`'s finished jobs, record and log, beyond the newest job_history_per_agent and older
        than job_history_days."""
        cutoff = time.time() - self._limits.job_history_days * 86400
        rows = await self._db.fetch_all(
            "SELECT id, log_path, finished_at FROM jobs WHERE owner = ? AND state NOT IN ('queued', 'running')"
            " ORDER BY seq DESC",
            (owner,),
        )
        old = [
            row
            for position, row in enumerate(rows)
            if position >= self._limits.job_history_per_agent or (row["finished_at"] or 0.0) < cutoff
        ]
        if not old:
            return
        await self._db.execute_many(("DELETE FROM jobs WHERE id = ?", (row["id"],)) for row in old)
        for row in old:
            Path(row["log_path"]).unlink(missing_ok=True)  # noqa: ASYNC240 one unlink per old job's local log
        logger.info("forgot %d old finished job(s) of %s", len(old), owner)

    async def _finish(
        self, job_id: str, state: JobState, exit_code: int | None, limit: str | None, error: str | None
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE jobs SET state = ?, exit_code = ?, limit_hit = ?, error = ?, finished_at = ? WHERE id = ?",
                (state.value, exit_code, limit, error, time.time(), job_id),
            )

    def _signal_done(self, job_id: str) -> None:
        event = self._done.pop(job_id, None)
        if event is not None:
            event.set()


def _info(row: aiosqlite.Row) -> JobRecord:
    return JobRecord.model_validate({key: row[key] for key in row.keys()})  # noqa: SIM118 - a Row, not a dict


JOBS_FILE = "jobs.sqlite"
"""The job table's file in a sandbox's root directory."""


class JobsReader:
    """A sandbox's job file opened read-only, for an operator's console: never a write."""

    def __init__(self, root: Path) -> None:
        self._file = ReadOnlyFile(root / JOBS_FILE)

    def limit_hits(self) -> list[dict[str, Any]]:
        """Jobs a sandbox limit ended, newest first."""
        return self._file.rows("SELECT * FROM jobs WHERE limit_hit IS NOT NULL ORDER BY seq DESC")
