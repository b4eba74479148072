"""The PGR scoring server: the only holder of hidden labels, and the only source of scores.

Quick feedback scores validation predictions (coarse, budgeted per agent and per team, never per
example); official submissions run a stored snapshot's method in the server's own sandbox, one
isolated run per task and seed of the hidden test split, with shuffled- and decoy-teacher
controls and a secret transfer task (docs/integrity.md). Run alone with `aar serve pgr` (stdio) or
`aar serve pgr --http`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
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
from servers.pgr.isolated_runs import LocalRuns, RunExecutor
from servers.pgr.models import (
    Budget,
    Leaderboard,
    LeaderboardRow,
    Preparing,
    Progress,
    QuickScore,
    Submission,
    TaskInfo,
    TaskOut,
    TaskResult,
)
from servers.pgr.quick import coarse_answer, nearest_answer
from servers.pgr.run_journal import RunJournal
from servers.pgr.secret_task import derive_secret_tasks
from servers.pgr.smuggling import find_smuggled
from servers.pgr.store import PgrStore, Refusal
from servers.pgr.submissions import SubmissionWorker
from servers.pgr.testbed import RunRef, TaskBench
from servers.pgr.verdict import Margins
from servers.sandbox.config import SandboxConfig
from servers.sandbox.server import sandbox_config
from servers.sandbox.service import Sandbox
from servers.storage.models import SnapshotId
from servers.storage.server import open_repository
from servers.w2s.api import FINETUNE, FROZEN, StrongMode
from servers.w2s.encoders import minilm_dir

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
class Preparation:
    """The cold start's progress: task seeds cached so far, for an honest estimate of the rest."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str | None = None

    def report(self) -> Preparing:
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        return Preparing(done=self.done, total=self.total, seconds_left=None if left is None else round(left))

    def check(self) -> None:
        """Raise a clear error unless the data is ready (tools answer at once, never wait minutes)."""
        if self.failed is not None:
            raise ToolInputError(f"the scorer could not prepare its data ({self.failed}); tell the operator")
        if not self.ready.is_set():
            report = self.report()
            eta = "" if report.seconds_left is None else f", about {report.seconds_left:.0f} s left"
            raise ToolInputError(
                f"the scorer is preparing its data ({report.done} of {report.total} task seeds{eta}); try again then"
            )


@dataclass
class PgrState:
    store: PgrStore
    bench: TaskBench
    preparation: Preparation
    worker: SubmissionWorker
    settings: Settings
    local_agent: str | None
    quick_locks: dict[str, asyncio.Lock]
    texts: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)


def _state(ctx: Context) -> PgrState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


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
        mode=row["mode"],
        results=[TaskResult(**result) for result in row["results"]],
        flags=row["flags"],
        error=row["error"],
        derived_from=row["derived_from"],
        same_code_as=row["same_code_as"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def server_key(folder: Path) -> Path:
    """The server's secret (controls' randomness), made once and readable by the server alone."""
    path = folder / "secret.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(32))
    return path


def runner_sandbox_config(settings: Settings, mode: StrongMode) -> SandboxConfig:
    """The server's own sandbox for one mode of submission runs; frozen runs cannot see model weights."""
    config = sandbox_config(settings)
    limits = dataclasses.replace(config.limits, job_timeout_s=settings.pgr_submission_timeout_s)
    hidden = config.hidden_paths
    if mode == FROZEN:
        hidden = (*hidden, str(minilm_dir()), *map(str, settings.sandbox_model_dirs))
    return dataclasses.replace(
        config, data_dir=settings.data_dir / "pgr" / mode, limits=limits, mounts=(), hidden_paths=hidden
    )


async def open_runs(settings: Settings, stack: contextlib.AsyncExitStack) -> RunExecutor:
    """Where official runs execute: the server's own sandboxes, or a Ray cluster (AAR_EXECUTOR=ray)."""
    if settings.executor == "ray":
        from servers.cluster.connection import connect
        from servers.cluster.node_sandbox import NodeSandboxSpec
        from servers.pgr.ray_runs import RayRuns

        await asyncio.to_thread(connect, settings)
        specs = {
            mode: NodeSandboxSpec(runner_sandbox_config(settings, mode), settings.sandbox_unsafe_no_isolation)
            for mode in (FROZEN, FINETUNE)
        }
        return RayRuns(specs, settings.ray_node_dir, cpus=settings.ray_run_cpus, retries=settings.ray_run_retries)
    sandboxes: dict[StrongMode, Sandbox] = {}
    for mode in (FROZEN, FINETUNE):
        sandbox = await Sandbox.open(
            runner_sandbox_config(settings, mode), unsafe_no_isolation=settings.sandbox_unsafe_no_isolation
        )
        stack.push_async_callback(sandbox.close)
        sandboxes[mode] = sandbox
    return LocalRuns(sandboxes)


def run_gpus(settings: Settings, bench: TaskBench, ref: RunRef, mode: StrongMode) -> float:
    """GPUs a cluster run asks for: AAR_RAY_RUN_GPUS for a fine-tuning run on a causal LM, else none."""
    if mode == FINETUNE and bench.scored[ref.task].spec.strong.kind == "hf-causal-lm":
        return settings.ray_run_gpus
    return 0.0


def code_fingerprint(files: Mapping[str, bytes]) -> str:
    """A hash of a snapshot's code that ignores file names, comments, docstring layout and formatting."""
    parts = []
    for content in files.values():
        try:
            parts.append(ast.dump(ast.parse(content)).encode())
        except (SyntaxError, ValueError):
            parts.append(content)
    digest = hashlib.sha256()
    for part in sorted(parts):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _refusal_message(refusal: Refusal, what: str, setting: str) -> str:
    """Which budget refused (``setting`` is its per-agent name), and when a unit frees."""
    whose = "your" if refusal.scope == "agent" else "the team's"
    name = setting if refusal.scope == "agent" else setting.replace("AAR_PGR_", "AAR_PGR_TEAM_")
    wait = max(1, round((refusal.resets_at - time.time()) / 60))
    return (
        f"{whose} {what} budget is spent ({refusal.limit} per hour, setting {name});"
        f" the next one frees in about {wait} min"
    )


async def _precompute(
    settings: Settings, key_file: Path, job: str, *extra: str, on_line: Callable[[str], None] | None = None
) -> None:
    """Run servers.pgr.precompute in a child process (logs to our stderr, stdout lines to on_line);
    raise if it fails. Cancelling kills the child, so a server stops at once whatever it computes."""
    args = ["-m", "servers.pgr.precompute", job, "--cache-dir", str(settings.cache_dir)]
    args += [
        "--seeds",
        str(settings.pgr_seeds),
        "--key-file",
        str(key_file),
        "--secret-dir",
        str(settings.secret_tasks_dir),
    ]
    if settings.pgr_tasks_dir is not None:
        args += ["--tasks-dir", str(settings.pgr_tasks_dir)]
    process = await asyncio.create_subprocess_exec(sys.executable, *args, *extra, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        async for line in process.stdout:
            if on_line is not None:
                on_line(line.decode().strip())
        code = await process.wait()
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if code != 0:
        raise RuntimeError(f"servers.pgr.precompute {job} exited with {code}")


class Precomputed:
    """The fine-tuned ceilings and the reference method's scores, each computed once in a child process."""

    def __init__(self, settings: Settings, key_file: Path) -> None:
        self._settings = settings
        self._key_file = key_file
        self._lock = asyncio.Lock()
        self._finetune_ready = False
        self._reference: asyncio.Task[dict[str, float]] | None = None

    async def ceilings(self, mode: StrongMode) -> None:
        if mode != FINETUNE:
            return
        async with self._lock:
            if not self._finetune_ready:
                await _precompute(self._settings, self._key_file, "ceilings")
                self._finetune_ready = True

    def start_reference(self) -> None:
        self._reference = asyncio.create_task(self._compute_reference())

    async def _compute_reference(self) -> dict[str, float]:
        out = self._settings.data_dir / "pgr" / f"reference-{self._settings.pgr_seeds}-seeds.json"
        if not out.exists():
            await _precompute(self._settings, self._key_file, "reference", "--out", str(out))
        return json.loads(out.read_text())["means"]  # type: ignore[no-any-return]

    async def reference(self) -> dict[str, float]:
        """The reference method's mean PGR per task (empty, and the transfer check off, if it failed)."""
        if self._reference is None:
            return {}
        try:
            return await asyncio.shield(self._reference)
        except Exception:
            logger.exception("no reference scores: the transfer check is off")
            return {}

    def cancel(self) -> None:
        if self._reference is not None:
            self._reference.cancel()


async def _prepare(state: PgrState, precomputed: Precomputed, key_file: Path) -> None:
    """Cache every task seed in a child process (reporting progress), then load the cache here."""
    bench, preparation = state.bench, state.preparation

    def prepared(line: str) -> None:
        if line.startswith("prepared "):
            preparation.done += 1
            logger.info("%s (%.0f s)", line, time.monotonic() - preparation.started)

    try:
        await _precompute(state.settings, key_file, "prepare", on_line=prepared)
    except RuntimeError as error:
        logger.error("preparation failed: %s", error)
        preparation.failed = str(error)
        return
    for task in bench.scored:
        for seed in bench.seeds:
            await bench.run(bench.prepare, task, seed)
    await bench.run(bench.export_public_inputs, state.settings.public_tasks_dir)
    state.texts["test"] = await bench.run(bench.test_texts)
    state.texts["validation"] = await bench.run(bench.validation_texts)
    preparation.ready.set()
    precomputed.start_reference()


def create_server(settings: Settings, *, local_agent: str | None = None) -> MCPServer[Any]:
    """The PGR server over `settings.data_dir` (pgr.sqlite, the cache, its own submission sandboxes)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[PgrState]:
        async with contextlib.AsyncExitStack() as stack:
            runs = await open_runs(settings, stack)
            store = await PgrStore.open(settings.data_dir / "pgr.sqlite", synchronous=settings.sqlite_synchronous)
            stack.push_async_callback(store.close)
            key_file = server_key(settings.data_dir / "pgr")
            if settings.pgr_secret_tasks_dir is None:
                await asyncio.to_thread(derive_secret_tasks, settings.secret_tasks_dir)
            bench = TaskBench(
                settings.pgr_tasks_dir, settings.secret_tasks_dir, settings.cache_dir, settings.pgr_seeds,
                key_file.read_bytes(),
            )  # fmt: skip
            stack.push_async_callback(bench.drain)
            precomputed = Precomputed(settings, key_file)
            stack.callback(precomputed.cancel)
            worker = SubmissionWorker(
                store,
                bench,
                await open_repository(settings),
                runs,
                RunJournal(settings.data_dir / "pgr" / "runs"),
                timeout_s=settings.pgr_submission_timeout_s,
                margins=Margins(settings.pgr_control_margin, settings.pgr_decoy_margin, settings.pgr_transfer_margin),
                ceilings=precomputed.ceilings,
                reference=precomputed.reference,
                parallel_runs=settings.pgr_parallel_runs,
                gpus=lambda ref, mode: run_gpus(settings, bench, ref, mode),
            )
            preparation = Preparation(total=len(bench.scored) * len(bench.seeds))
            state = PgrState(store, bench, preparation, worker, settings, local_agent, {})
            tasks = [asyncio.create_task(_prepare(state, precomputed, key_file))]

            async def work_when_ready() -> None:
                await preparation.ready.wait()
                await worker.run_forever()

            tasks.append(asyncio.create_task(work_when_ready()))
            try:
                yield state
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    server = new_server("pgr", instructions=INSTRUCTIONS, settings=settings, local_agent=local_agent, lifespan=lifespan)

    async def budget(state: PgrState, agent: str) -> Budget:
        since = time.time() - HOUR
        quick_mine, quick_team = await state.store.budget_used(agent, "quick", since)
        sub_mine, sub_team = await state.store.budget_used(agent, "submission", since)
        return Budget(
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

    @server.tool(annotations=READ)
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
            earlier = [
                (row["predictions"], row["accuracy"], row["pgr"]) for row in await state.store.quick_queries(task)
            ]
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
        state.preparation.check()
        code = await repository.read_all(full_id)
        ancestry = await repository.log(full_id, limit=500)
        derived_from = [info.id for info in ancestry if info.author != agent]
        fingerprint = code_fingerprint(code)
        twin = await state.store.first_with_code(fingerprint)
        if twin is not None and twin["agent"] != agent and twin["snapshot"] not in {info.id for info in ancestry}:
            raise ToolInputError(
                f"this is exactly the code of {twin['agent']}'s submission {twin['id']} (snapshot"
                f" {twin['snapshot'][:12]}): to build on it, save your snapshot with based_on={twin['snapshot'][:12]}"
                " so the credit is traceable, and change something"
            )
        refusal = await state.store.reserve(
            agent, "submission", per_agent=settings.pgr_submissions_per_hour,
            per_team=settings.pgr_team_submissions_per_hour, window_s=HOUR,
        )  # fmt: skip
        if refusal is not None:
            raise ToolInputError(_refusal_message(refusal, "submission", "AAR_PGR_SUBMISSIONS_PER_HOUR"))
        public_tests = {name: texts for name, texts in state.texts["test"].items() if name in state.bench.tasks}
        findings = await asyncio.to_thread(find_smuggled, code, public_tests, state.texts["validation"])
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
            derived_from=derived_from, same_code_as=None if twin is None else twin["id"],
        )  # fmt: skip
        state.worker.wake()
        return _submission(row, await state.store.queue_position(row["id"]))

    @server.tool(annotations=READ)
    async def submission(submission_id: SubmissionId, ctx: Context) -> Submission:
        """A submission's state, progress, and when done its PGR per task (secret task included) and control runs."""
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
                    derived_from=row["derived_from"],
                    same_code_as=row["same_code_as"],
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
        state = _state(ctx)
        check_task(state, name)
        state.preparation.check()
        return json.dumps(dataclasses.asdict(state.bench.summary(name)), indent=2)

    @server.prompt(description="Start a weak-to-strong research session with the brief every agent gets.")
    def research_brief() -> str:
        return BACKGROUND + "\n\nStart with `task_info`, then read the forum feed."

    return server
