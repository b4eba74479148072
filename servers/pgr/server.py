"""The PGR scoring server: the only holder of hidden labels, and the only source of scores.

Quick feedback scores validation predictions (coarse, budgeted per agent and per team, never per
example); official submissions run a stored snapshot's method in the server's own sandbox, one
isolated run per task and seed of the hidden test split, with shuffled- and decoy-teacher
controls and a secret transfer task (docs/integrity.md). Run alone with `aar serve pgr` (stdio) or
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
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from servers.kit.annotations import APPEND, OVERWRITE, READ_ONLY
from servers.kit.errors import NotFoundError, PermissionDeniedError, ToolInputError
from servers.kit.hosting import lifespan_state, new_server
from servers.kit.identity import OPERATOR_ONLY, calling_agent, is_operator
from servers.kit.settings import Settings
from servers.pgr.models import (
    EntryPoint,
    Leaderboard,
    LeaderboardRow,
    Progress,
    QuickScore,
    ScoringBudget,
    Submission,
    SubmissionId,
    SubmissionRecord,
    TaskInfo,
    TaskName,
    TaskOut,
)
from servers.pgr.quick import coarse_answer, nearest_answer
from servers.pgr.service import PgrState, code_fingerprint, open_service
from servers.pgr.smuggling import find_smuggled
from servers.pgr.store import Refusal
from servers.storage.models import SnapshotId

logger = logging.getLogger(__name__)

BACKGROUND = (Path(__file__).with_name("background.md")).read_text()
API_SOURCE = Path(__file__).resolve().parents[1] / "w2s" / "api.py"
HOUR = 3600.0
METHOD_API_POINTER = "Read the resources w2s://background (the brief) and w2s://method-api (servers/w2s/api.py)."

INSTRUCTIONS = """The scoring server of the weak-to-strong study. `task_info` describes the tasks and your budget.
`evaluate_predictions` gives quick, coarse validation feedback from a small hourly budget.
`submit` a stored snapshot and its entry point for the official score: the server runs it in its
own sandbox, once per task and seed of the hidden test split, with controls that change the
teacher (methods that do not learn from their teacher are flagged) and a secret transfer task.
Follow it with `submission`; `leaderboard` lists official results. Read w2s://background first."""


def _state(ctx: Context) -> PgrState:
    return lifespan_state(ctx, PgrState)


def _submission(row: SubmissionRecord, position: int) -> Submission:
    return Submission(
        id=row.id,
        agent=row.agent,
        snapshot=row.snapshot,
        entry_point=row.entry_point,
        state=row.state,
        queue_position=position,
        progress=Progress(done=row.progress_done, total=row.progress_total),
        pgr_mean=row.pgr_mean,
        mode=row.mode,
        results=row.results,
        flags=row.flags,
        error=row.error,
        derived_from=row.derived_from,
        same_code_as=row.same_code_as,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _refusal_message(refusal: Refusal, what: str, setting: str) -> str:
    """Which budget refused (``setting`` is its per-agent name), and when a unit frees."""
    whose = "your" if refusal.scope == "agent" else "the team's"
    name = setting if refusal.scope == "agent" else setting.replace("AAR_PGR_", "AAR_PGR_TEAM_")
    wait = max(1, round((refusal.resets_at - time.time()) / 60))
    return (
        f"{whose} {what} budget is spent ({refusal.limit} per hour, setting {name});"
        f" the next one frees in about {wait} min"
    )


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The PGR server over `settings.data_dir` (pgr.sqlite, the cache, its own submission sandboxes)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[PgrState]:
        async with open_service(settings, local_agent) as state:
            yield state

    server = new_server("pgr", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan)

    async def budget(state: PgrState, agent: str) -> ScoringBudget:
        since = time.time() - HOUR
        quick_mine, quick_team = await state.store.budget_used(agent, "quick", since)
        sub_mine, sub_team = await state.store.budget_used(agent, "submission", since)
        return ScoringBudget(
            evaluations_per_hour=settings.pgr_evaluations_per_hour,
            evaluations_left=max(0, settings.pgr_evaluations_per_hour - quick_mine),
            team_evaluations_left=max(0, settings.pgr_team_evaluations_per_hour - quick_team),
            submissions_per_hour=settings.pgr_submissions_per_hour,
            submissions_left=max(0, settings.pgr_submissions_per_hour - sub_mine),
            team_submissions_left=max(0, settings.pgr_team_submissions_per_hour - sub_team),
        )

    def check_task(state: PgrState, task: str) -> None:
        if task not in state.bench.tasks:
            raise NotFoundError(f"no task {task!r}: choose one of {', '.join(state.bench.tasks)}")

    @server.tool(title="Tasks and budgets", annotations=READ_ONLY)
    async def task_info(
        ctx: Context, task: Annotated[TaskName | None, Field(description="Only this task.")] = None
    ) -> TaskInfo:
        """The public tasks (sizes, weak and ceiling accuracy) and your remaining budget; answers at once,
        also while the scorer prepares its data (then `ready` is false and `preparing` says how far it is)."""
        state = _state(ctx)
        agent = calling_agent(state.local_agent)
        if task is not None:
            check_task(state, task)
        ready = state.preparation.ready.is_set()
        tasks = []
        if ready:
            summaries = [state.bench.summary(name) for name in state.bench.tasks if task in (None, name)]
            tasks = [TaskOut(**dataclasses.asdict(s), inputs=f"/tasks/{s.name}/validation.pt") for s in summaries]
        return TaskInfo(
            ready=ready,
            preparing=None if ready else state.preparation.report(),
            tasks=tasks,
            secret_tasks=len(state.bench.secret),
            method_api=METHOD_API_POINTER,
            budget=await budget(state, agent),
        )

    @server.tool(title="Quick evaluation on validation", annotations=APPEND)
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
        """Quick feedback: validation accuracy on a grid of 0.02 and its PGR (uses your and the team's
        hourly budget; predictions within 5% of an earlier team query get that query's answer, free)."""
        state = _state(ctx)
        agent = calling_agent(state.local_agent)
        check_task(state, task)
        state.preparation.check()
        n = state.bench.validation_size(task)
        if len(predictions) != n:
            raise ToolInputError(
                f"predictions must be exactly {n} characters, each '0' or '1' (got {len(predictions)});"
                f" run your method on /tasks/{task}/validation.pt"
            )
        digest = hashlib.sha256(predictions.encode()).hexdigest()

        async def audit(kind: str, accuracy: float | None = None, pgr: float | None = None) -> None:
            await state.store.record_evaluation(
                agent=agent, kind=kind, task=task, split="validation", predictions_sha256=digest,
                accuracy=accuracy, pgr=pgr,
            )  # fmt: skip

        async with state.quick_locks.setdefault(task, asyncio.Lock()):
            earlier = [(q.predictions, q.accuracy, q.pgr) for q in await state.store.quick_queries(task)]
            repeated = nearest_answer(predictions, earlier)
            if repeated is None:
                refusal = await state.store.reserve(
                    agent, "quick", per_agent=settings.pgr_evaluations_per_hour,
                    per_team=settings.pgr_team_evaluations_per_hour, window_s=HOUR,
                )  # fmt: skip
                if refusal is not None:
                    await audit("refused")
                    raise ToolInputError(
                        _refusal_message(refusal, "quick-evaluation", "AAR_PGR_EVALUATIONS_PER_HOUR")
                        + "; or submit a snapshot for the official score"
                    )
                accuracy, weak, ceiling = await state.bench.run(state.bench.quick_score, task, predictions)
                answer = coarse_answer(accuracy, weak, ceiling)
                await state.store.record_quick_query(
                    task=task, agent=agent, predictions=predictions, accuracy=answer.accuracy, pgr=answer.pgr
                )
            else:
                answer = repeated
        await audit("repeated" if repeated else "quick", answer.accuracy, answer.pgr)
        return QuickScore(
            task=task,
            accuracy=answer.accuracy,
            pgr=answer.pgr,
            repeated=repeated is not None,
            evaluations_left=(await budget(state, agent)).evaluations_left,
        )

    @server.tool(title="Submit for official scoring", annotations=APPEND)
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
        state.preparation.check()
        code = await repository.read_all(full_id)
        ancestry = await repository.log(full_id, limit=500)
        derived_from = [info.id for info in ancestry if info.author != agent]
        fingerprint = code_fingerprint(code)
        twin = await state.store.first_with_code(fingerprint)
        if twin is not None and twin.agent != agent and twin.snapshot not in {info.id for info in ancestry}:
            raise ToolInputError(
                f"this is exactly the code of {twin.agent}'s submission {twin.id} (snapshot"
                f" {twin.snapshot[:12]}): to build on it, save your snapshot with based_on={twin.snapshot[:12]}"
                " so the credit is traceable, and change something"
            )
        refusal = await state.store.reserve(
            agent, "submission", per_agent=settings.pgr_submissions_per_hour,
            per_team=settings.pgr_team_submissions_per_hour, window_s=HOUR,
        )  # fmt: skip
        if refusal is not None:
            raise ToolInputError(_refusal_message(refusal, "submission", "AAR_PGR_SUBMISSIONS_PER_HOUR"))
        public_tests = {name: texts for name, texts in state.test_texts.items() if name in state.bench.tasks}
        findings = await asyncio.to_thread(find_smuggled, code, public_tests, state.validation_texts)
        if findings:
            logger.warning("refused %s's snapshot %s: %s", agent, full_id[:12], findings)
            what = "; ".join(f"{f.count} {f.kind} of task {f.task}" for f in findings)
            raise ToolInputError(
                f"refused (this used a submission): snapshot {full_id[:12]} holds {what}. Methods learn from the"
                " teacher's labels and the strong model, not from evaluation data or hand-labelled examples"
                " (w2s://background, 'What counts')"
            )
        row = await state.store.create_submission(
            agent=agent, snapshot=full_id, entry_point=entry_point, code_sha256=fingerprint,
            derived_from=derived_from, same_code_as=None if twin is None else twin.id,
        )  # fmt: skip
        state.worker.wake()
        return _submission(row, await state.store.queue_position(row.id))

    @server.tool(title="A submission's status", annotations=READ_ONLY)
    async def submission(submission_id: SubmissionId, ctx: Context) -> Submission:
        """A submission's state, progress, and when done its PGR per task (secret task included) and control runs."""
        state = _state(ctx)
        row = await state.store.submission(submission_id)
        if row is None:
            raise NotFoundError(f"no submission {submission_id!r}: submit returns the id")
        position = await state.store.queue_position(submission_id) if row.state == "queued" else 0
        return _submission(row, position)

    @server.tool(title="Leaderboard", annotations=READ_ONLY)
    async def leaderboard(
        ctx: Context, limit: Annotated[int, Field(ge=1, le=200, description="Most rows to return.")] = 20
    ) -> Leaderboard:
        """Official results only (finished, not flagged), best mean PGR first, each linked to its snapshot."""
        rows = await _state(ctx).store.leaderboard(limit)
        return Leaderboard(
            rows=[
                LeaderboardRow(
                    rank=rank,
                    agent=row.agent,
                    submission_id=row.id,
                    snapshot=row.snapshot,
                    entry_point=row.entry_point,
                    pgr_mean=row.pgr_mean,
                    tasks={result.task: result.pgr_mean for result in row.results},
                    derived_from=row.derived_from,
                    same_code_as=row.same_code_as,
                    finished_at=row.finished_at,
                )
                for rank, row in enumerate(rows, 1)
            ]
        )

    @server.tool(title="Quarantine a submission (operators)", annotations=OVERWRITE, meta={OPERATOR_ONLY: True})
    async def quarantine(submission_id: SubmissionId, ctx: Context) -> Submission:
        """Operators only (a person, human:NAME): take a scored submission off the leaderboard, as yourself."""
        state = _state(ctx)
        caller = calling_agent(state.local_agent)
        if not is_operator(caller):
            raise PermissionDeniedError(f"{caller} may not quarantine submissions: only an operator (human:NAME) may")
        try:
            row = await state.store.quarantine(submission_id, caller)
        except ValueError as error:
            raise ToolInputError(str(error)) from None
        return _submission(row, 0)

    @server.resource("w2s://background", mime_type="text/markdown", description="The research brief every agent gets.")
    def background() -> str:
        return BACKGROUND

    @server.resource("w2s://method-api", mime_type="text/x-python", description="servers/w2s/api.py, the method API.")
    def method_api() -> str:
        return API_SOURCE.read_text()

    @server.resource("w2s://tasks/{name}", mime_type="application/json", description="One task and its baselines.")
    async def task_resource(name: str, ctx: Context) -> str:
        state = _state(ctx)
        check_task(state, name)
        state.preparation.check()
        return json.dumps(dataclasses.asdict(state.bench.summary(name)), indent=2)

    @server.prompt(description="Start a weak-to-strong research session with the brief every agent gets.")
    def research_brief() -> str:
        return BACKGROUND + "\n\nStart with `task_info`, then read the forum feed."

    return server
