"""The scoring service behind the PGR tools: what the server opens when it starts and closes when it stops.

Its own sandboxes (one per strong-model mode), the store, the task bench, the submission worker,
and the cold start: every task seed is cached in a child process while the tools already answer
(`Preparation` says how far it is), then the worker starts taking the queue.
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
from functools import partial
from pathlib import Path

from servers.kit.errors import ToolInputError
from servers.kit.settings import Settings
from servers.pgr.isolated_runs import LocalRuns, RunExecutor
from servers.pgr.models import Preparing
from servers.pgr.precompute import REFERENCE_METHOD, cached_reference_means
from servers.pgr.run_journal import RunJournal
from servers.pgr.secret_task import MIN_GAP, SECRET_FAMILIES, derive_secret_tasks
from servers.pgr.store import DATA_FILE, PgrStore, runner_data_dir
from servers.pgr.submissions import SubmissionWorker
from servers.pgr.testbed import RunRef, TaskBench
from servers.pgr.verdict import Margins
from servers.sandbox.cgroups import CgroupRoot
from servers.sandbox.config import SandboxConfig
from servers.sandbox.server import sandbox_config
from servers.sandbox.store import Sandbox
from servers.storage.store import open_repository
from servers.w2s.api import FINETUNE, FROZEN, StrongMode
from servers.w2s.encoders import minilm_dir

logger = logging.getLogger(__name__)


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
    """What the PGR tools work with, opened and closed with the server (`open_service`)."""

    store: PgrStore
    bench: TaskBench
    preparation: Preparation
    worker: SubmissionWorker
    settings: Settings
    local_agent: str | None
    quick_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    """One lock per task: quick queries of a task are answered one at a time."""
    test_texts: dict[str, frozenset[str]] = field(default_factory=dict)
    """Every scored task's hidden test texts (for the smuggling check at submit), once prepared."""
    validation_texts: dict[str, frozenset[str]] = field(default_factory=dict)
    """Every public task's validation texts, once prepared."""


@contextlib.asynccontextmanager
async def open_service(settings: Settings, local_agent: str | None) -> AsyncIterator[PgrState]:
    """The service over `settings.data_dir` (pgr.sqlite, the cache, its own submission sandboxes), until closed."""
    async with contextlib.AsyncExitStack() as stack:
        runs = await open_runs(settings, stack)
        store = await PgrStore.open(settings.data_dir / DATA_FILE, synchronous=settings.sqlite_synchronous)
        stack.push_async_callback(store.close)
        key_file = server_key(settings.data_dir / "pgr")
        derives = _draws_secret_tasks(settings)
        bench = TaskBench(
            settings.pgr_tasks_dir, None if derives else settings.secret_tasks_dir, settings.cache_dir,
            settings.pgr_seeds, key_file.read_bytes(),
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
            parallel_submissions=settings.pgr_parallel_submissions,
            gpus=lambda ref, mode: run_gpus(settings, bench, ref, mode),
        )
        secret_count = len(SECRET_FAMILIES) if derives else len(bench.secret)
        preparation = Preparation(total=(len(bench.tasks) + secret_count) * len(bench.seeds))
        state = PgrState(store, bench, preparation, worker, settings, local_agent)
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


def _draws_secret_tasks(settings: Settings) -> bool:
    """Whether the server draws its own secret tasks (no operator's folder). It draws them while it
    prepares, on the torch thread (a draw is checked for a gap to measure, which trains models, tens
    of seconds once per data directory): meanwhile its tools answer, saying how far it is."""
    return settings.pgr_secret_tasks_dir is None


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
        config,
        data_dir=runner_data_dir(settings.data_dir, mode),
        limits=limits,
        mounts=(),
        hidden_paths=hidden,
        cpu_weight=settings.pgr_cpu_weight,
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
    # one cgroup for both modes' runs, so that an old submission's runs yield to a young one's whatever
    # mode either declared (servers.pgr.cpu_ageing)
    cgroups = CgroupRoot.detect(settings.pgr_cpu_weight)
    if cgroups is not None:
        stack.callback(cgroups.remove)
    sandboxes: dict[StrongMode, Sandbox] = {}
    for mode in (FROZEN, FINETUNE):
        sandbox = await Sandbox.open(
            runner_sandbox_config(settings, mode),
            unsafe_no_isolation=settings.sandbox_unsafe_no_isolation,
            cgroups=cgroups,
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

    def start_reference(self, bench: TaskBench) -> None:
        self._reference = asyncio.create_task(self._compute_reference(bench))

    async def _compute_reference(self, bench: TaskBench) -> dict[str, float]:
        """From this data directory's record, else the shared cache, else computed in a child process."""
        out = self._settings.data_dir / "pgr" / f"reference-{self._settings.pgr_seeds}-seeds.json"
        if not out.exists():
            cached = await bench.run(cached_reference_means, bench)  # file reads and hashing: off the loop
            if cached is not None:
                out.write_text(json.dumps({"method": REFERENCE_METHOD, "means": cached}))
            else:
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
    """Cache every task seed: here when the strong features are all cached (seconds), else in a child
    process (reporting progress) so that minutes of embedding never hold up this server's requests."""
    bench, preparation = state.bench, state.preparation

    def prepared(line: str) -> None:
        if line.startswith("prepared "):
            preparation.done += 1
            logger.info("%s (%.0f s)", line, time.monotonic() - preparation.started)

    def seed_prepared() -> None:
        preparation.done += 1  # one int written from the torch thread, read by status reports

    if _draws_secret_tasks(state.settings):
        secret_root = state.settings.secret_tasks_dir
        await bench.run(partial(derive_secret_tasks, secret_root, check=bench.draw_fitness))
        bench.load_secret(secret_root)
        preparation.total = len(bench.scored) * len(bench.seeds)
    if not await bench.run(bench.prepare_with_cached_features, seed_prepared):
        preparation.done = 0
        try:
            await _precompute(state.settings, key_file, "prepare", on_line=prepared)
        except RuntimeError as error:
            logger.error("preparation failed: %s", error)
            preparation.failed = str(error)
            return
        for task in bench.scored:
            for seed in bench.seeds:
                await bench.run(bench.prepare, task, seed)
    preparation.done = preparation.total
    for name, lead in (await bench.run(bench.narrow_tasks)).items():
        logger.warning(
            "task %s: its ceiling leads the teacher by %.3f of test accuracy, under %.2f: its PGR is mostly"
            " noise and moves every official mean (replace the pack)", name, lead, MIN_GAP,
        )  # fmt: skip
    await bench.run(bench.export_public_inputs, state.settings.public_tasks_dir)
    state.test_texts = await bench.run(bench.test_texts)
    state.validation_texts = await bench.run(bench.validation_texts)
    preparation.ready.set()
    precomputed.start_reference(bench)
