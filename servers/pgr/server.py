"""The PGR scoring server: the only holder of hidden labels, and the only source of scores.

Quick feedback scores validation predictions (rounded, budgeted, never per example); official
submissions run a stored snapshot's method in a sandbox over every task and 5 seeds of the
hidden test split, with a shuffled-teacher control. Run alone with `aar serve pgr` (stdio) or
`aar serve pgr --http`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from servers.kit.errors import NotFoundError, ToolInputError
from servers.kit.hosting import new_server
from servers.kit.identity import calling_agent
from servers.kit.settings import Settings
from servers.pgr.models import (
    Budget,
    Leaderboard,
    LeaderboardRow,
    Progress,
    QuickScore,
    Submission,
    TaskInfo,
    TaskOut,
    TaskResult,
)
from servers.pgr.store import PgrStore
from servers.pgr.submissions import SubmissionWorker
from servers.pgr.testbed import TaskBench
from servers.sandbox.config import SandboxConfig
from servers.sandbox.server import sandbox_config
from servers.sandbox.service import Sandbox
from servers.storage.models import SnapshotId
from servers.storage.server import open_repository

logger = logging.getLogger(__name__)

BACKGROUND = (Path(__file__).with_name("background.md")).read_text()
API_SOURCE = Path(__file__).resolve().parents[1] / "w2s" / "api.py"
HOUR = 3600.0

INSTRUCTIONS = """\
The scoring server of the weak-to-strong study. `task_info` describes the tasks, the method API
and your budget. `evaluate_predictions` gives quick, rounded validation feedback from a small
hourly budget. `submit` a stored snapshot and its entry point for the official score: the server
runs it in a sandbox on every task over 5 seeds of the hidden test split, with a control that
shuffles the teacher's labels (methods that ignore their teacher are flagged). Follow it with
`submission`; `leaderboard` lists official results. Read the resource w2s://background first."""

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
SCORE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)

TaskName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="A task name from task_info.")]
EntryPoint = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}\.py:[A-Za-z_][A-Za-z0-9_]{0,100}$",
        description="File in the snapshot and function name, e.g. 'method.py:method'.",
    ),
]
SubmissionId = Annotated[str, Field(pattern=r"^sub_[0-9a-f]{12}$", description="An id returned by submit.")]


@dataclass
class PgrState:
    store: PgrStore
    bench: TaskBench
    ready: asyncio.Event
    worker: SubmissionWorker
    settings: Settings
    local_agent: str | None


def _state(ctx: Context) -> PgrState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def _ready(state: PgrState) -> PgrState:
    """Wait until the testbed's per-seed data is cached (minutes on a cold start, instant after)."""
    await state.ready.wait()
    return state


def _submission(row: dict[str, Any], position: int) -> Submission:
    return Submission(
        id=row["id"],
        agent=row["agent"],
        snapshot=row["snapshot"],
        entry_point=row["entry_point"],
        state=row["state"],
        queue_position=position,
        progress=Progress(done=row["progress_done"], total=row["progress_total"]),
        pgr_mean=row["pgr_mean"],
        results=[TaskResult(**result) for result in row["results"]],
        flags=row["flags"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def _prepare(bench: TaskBench, settings: Settings, ready: asyncio.Event) -> None:
    started = time.perf_counter()
    for task in bench.tasks:
        for seed in bench.seeds:
            await bench.run(bench.seed_data, task, seed)
        logger.info("task %s ready (%.0f s)", task, time.perf_counter() - started)
    await bench.run(bench.export_public_inputs, settings.public_tasks_dir)
    ready.set()


def runner_sandbox_config(settings: Settings) -> SandboxConfig:
    """The server's own sandbox for submissions: the agents' limits, a submission's wall clock."""
    config = sandbox_config(settings)
    limits = dataclasses.replace(config.limits, job_timeout_s=settings.pgr_submission_timeout_s)
    return dataclasses.replace(config, data_dir=settings.data_dir / "pgr", limits=limits, mounts=())


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The PGR server over `settings.data_dir` (pgr.sqlite, the cache, its own submission sandbox)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[PgrState]:
        store = await PgrStore.open(settings.data_dir / "pgr.sqlite", synchronous=settings.sqlite_synchronous)
        sandbox = await Sandbox.open(
            runner_sandbox_config(settings), unsafe_no_isolation=settings.sandbox_unsafe_no_isolation
        )
        bench = TaskBench(settings.pgr_tasks_dir, settings.cache_dir, settings.pgr_seeds)
        worker = SubmissionWorker(
            store,
            bench,
            await open_repository(settings),
            sandbox,
            timeout_s=settings.pgr_submission_timeout_s,
            control_margin=settings.pgr_control_margin,
        )
        ready = asyncio.Event()
        tasks = [asyncio.create_task(_prepare(bench, settings, ready))]

        async def work_when_ready() -> None:
            await ready.wait()
            await worker.run_forever()

        tasks.append(asyncio.create_task(work_when_ready()))
        try:
            yield PgrState(store, bench, ready, worker, settings, local_agent)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bench.drain()
            await sandbox.close()
            await store.close()

    server = new_server("pgr", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan)

    async def budget(state: PgrState, agent: str) -> Budget:
        since = time.time() - HOUR
        evaluations = await state.store.count_evaluations(agent, "quick", since)
        submissions = await state.store.count_submissions(agent, since)
        return Budget(
            evaluations_per_hour=settings.pgr_evaluations_per_hour,
            evaluations_left=max(0, settings.pgr_evaluations_per_hour - evaluations),
            submissions_per_hour=settings.pgr_submissions_per_hour,
            submissions_left=max(0, settings.pgr_submissions_per_hour - submissions),
        )

    def check_task(state: PgrState, task: str) -> None:
        if task not in state.bench.tasks:
            raise NotFoundError(f"no task {task!r}: choose one of {', '.join(state.bench.tasks)}")

    @server.tool(annotations=READ)
    async def task_info(
        ctx: Context, task: Annotated[TaskName | None, Field(description="Only this task.")] = None
    ) -> TaskInfo:
        """The tasks (sizes, weak and ceiling accuracy), the method API, and your remaining budget."""
        state = await _ready(_state(ctx))
        agent = calling_agent(state.local_agent)
        if task is not None:
            check_task(state, task)
        summaries = [state.bench.summary(name) for name in state.bench.tasks if task in (None, name)]
        tasks = [TaskOut(**dataclasses.asdict(s), inputs=f"/tasks/{s.name}/validation.pt") for s in summaries]
        return TaskInfo(tasks=tasks, method_api=BACKGROUND, budget=await budget(state, agent))

    @server.tool(annotations=SCORE)
    async def evaluate_predictions(
        task: TaskName,
        predictions: Annotated[
            str,
            Field(
                pattern=r"^[01]+$",
                max_length=100_000,
                description="One '0' or '1' per validation example, in the order of the public inputs.",
            ),
        ],
        ctx: Context,
    ) -> QuickScore:
        """Quick feedback: accuracy and PGR of validation predictions, rounded to 0.01 (uses your hourly budget)."""
        state = await _ready(_state(ctx))
        agent = calling_agent(state.local_agent)
        check_task(state, task)
        digest = hashlib.sha256(predictions.encode()).hexdigest()

        async def audit(kind: str, accuracy: float | None = None, pgr: float | None = None) -> None:
            await state.store.record_evaluation(
                agent=agent,
                kind=kind,
                task=task,
                split="validation",
                predictions_sha256=digest,
                accuracy=accuracy,
                pgr=pgr,
            )

        left = (await budget(state, agent)).evaluations_left
        if left <= 0:
            await audit("refused")
            raise ToolInputError(
                f"evaluation budget spent: {settings.pgr_evaluations_per_hour} per hour; try again later,"
                " or submit a snapshot for the official score"
            )
        try:
            accuracy, pgr = await state.bench.run(state.bench.quick_score, task, predictions)
        except ValueError as error:
            raise ToolInputError(f"{error}; run your method on /tasks/{task}/validation.pt") from None
        await audit("quick", accuracy, pgr)
        return QuickScore(
            task=task,
            accuracy=round(accuracy, 2),
            pgr=None if pgr is None else round(pgr, 2),
            evaluations_left=left - 1,
        )

    @server.tool(annotations=SCORE)
    async def submit(snapshot: SnapshotId, entry_point: EntryPoint, ctx: Context) -> Submission:
        """Queue a stored snapshot for the official score; returns at once (follow it with `submission`)."""
        state = _state(ctx)
        agent = calling_agent(state.local_agent)
        repository = state.worker.repository
        stored = await repository.snapshot(snapshot)
        full_id = stored.id
        if stored.author != agent:
            raise ToolInputError(
                f"snapshot {full_id[:12]} is {stored.author}'s: submit your own work; to build on it,"
                " save a snapshot of your own with based_on (credit stays traceable)"
            )
        file_name = entry_point.rsplit(":", 1)[0]
        listed = {entry.path for entry in stored.files}
        if file_name not in listed:
            raise ToolInputError(f"snapshot {full_id[:12]} has no file {file_name!r}; it holds {sorted(listed)[:20]}")
        if (await budget(state, agent)).submissions_left <= 0:
            raise ToolInputError(f"submission budget spent: {settings.pgr_submissions_per_hour} per hour; try later")
        total = len(state.bench.tasks) * len(state.bench.seeds) * 2
        row = await state.store.create_submission(agent=agent, snapshot=full_id, entry_point=entry_point, total=total)
        state.worker.wake()
        return _submission(row, await state.store.queue_position(row["id"]))

    @server.tool(annotations=READ)
    async def submission(submission_id: SubmissionId, ctx: Context) -> Submission:
        """A submission's state, progress, and when done its PGR per task with the shuffled-teacher control."""
        state = _state(ctx)
        row = await state.store.submission(submission_id)
        if row is None:
            raise NotFoundError(f"no submission {submission_id!r}: submit returns the id")
        position = await state.store.queue_position(submission_id) if row["state"] == "queued" else 0
        return _submission(row, position)

    @server.tool(annotations=READ)
    async def leaderboard(
        ctx: Context, limit: Annotated[int, Field(ge=1, le=200, description="Most rows to return.")] = 20
    ) -> Leaderboard:
        """Official results only (finished, not flagged), best mean PGR first, each linked to its snapshot."""
        rows = await _state(ctx).store.leaderboard(limit)
        return Leaderboard(
            rows=[
                LeaderboardRow(
                    rank=rank,
                    agent=row["agent"],
                    submission_id=row["id"],
                    snapshot=row["snapshot"],
                    entry_point=row["entry_point"],
                    pgr_mean=row["pgr_mean"],
                    tasks={result["task"]: result["pgr_mean"] for result in row["results"]},
                    finished_at=row["finished_at"],
                )
                for rank, row in enumerate(rows, 1)
            ]
        )

    @server.resource("w2s://background", mime_type="text/markdown", description="The research brief every agent gets.")
    def background() -> str:
        return BACKGROUND

    @server.resource("w2s://method-api", mime_type="text/x-python", description="servers/w2s/api.py, the method API.")
    def method_api() -> str:
        return API_SOURCE.read_text()

    @server.resource("w2s://tasks/{name}", mime_type="application/json", description="One task and its baselines.")
    async def task_resource(name: str, ctx: Context) -> str:
        state = await _ready(_state(ctx))
        check_task(state, name)
        return json.dumps(dataclasses.asdict(state.bench.summary(name)), indent=2)

    @server.prompt(description="Start a weak-to-strong research session with the brief every agent gets.")
    def research_brief() -> str:
        return BACKGROUND + "\n\nStart with `task_info`, then read the forum feed."

    return server
