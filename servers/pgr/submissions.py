"""Running submissions: a fair queue, and one isolated sandbox run per (task, seed, control).

Each run gets a fresh workspace of an isolated sandbox (the server's own, or one on a Ray node: see
servers.pgr.isolated_runs) holding the snapshot's code and one bundle under a fixed name: no run
shares a file, a process or a name with another, and nothing in a bundle says which task seed or
control it is (the method's seed is fresh and secret). First the method's declared strong-model mode
is read in its own run; a frozen method then runs where the strong model's weights do not exist.
Only '0'/'1' predictions come back, scored here against labels the sandbox never held. What the
submitter learns is the coarse verdict (servers.pgr.verdict) or one failure category: never the
method's output, which may carry hidden test texts. The plan and finished runs are journalled
(servers.pgr.run_journal): a restarted server reruns only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Collection

from servers.pgr.cpu_ageing import FULL_CPU_FRACTION, CpuAgeing
from servers.pgr.isolated_runs import RunExecutor, RunRequest
from servers.pgr.models import SubmissionRecord
from servers.pgr.run_journal import RunJournal
from servers.pgr.store import PgrStore
from servers.pgr.testbed import RunRef, RunScore, TaskBench, run_outcomes
from servers.pgr.verdict import Margins, judge
from servers.sandbox.limits import Limit
from servers.sandbox.models import JobState
from servers.storage.store import SnapshotRepository
from servers.w2s.api import FINETUNE, FROZEN, StrongMode

__all__ = ["FAILURES", "SubmissionWorker"]

logger = logging.getLogger(__name__)

DECLARE_TIMEOUT_S = 120.0
FAILURES = {
    "import": "the method could not be loaded or declared no valid strong-model mode",
    "timeout": "a run exceeded the submission's time limit",
    "limit": "a run hit a sandbox limit (memory, processes or disk)",
    "error": "the method raised an error in a run",
    "predictions": "a run left no valid predictions (one '0' or '1' per evaluation text)",
    "capacity": "no node of the scoring cluster can hold a run's GPU request (the operator's setting, not your"
    " method): tell the operator, whose server log names the setting",
}
"""Everything a failed submission tells its author; the logs stay with the operator."""

Ceilings = Callable[[StrongMode], Awaitable[None]]


class _Failed(Exception):
    """The submitted method (not the server) failed; ``category`` is a key of FAILURES."""

    def __init__(self, category: str) -> None:
        super().__init__(FAILURES[category])
        self.category = category


class SubmissionWorker:
    """Takes queued submissions, fairly across agents, and runs each to a verdict.

    Up to `parallel_submissions` young ones run at once, each of a different agent, each with up to
    `parallel_runs` runs at a time. A submission older than its full-CPU time (servers.pgr.cpu_ageing:
    a tenth of the time limit) gives its place up and runs on, its runs yielding the CPU to younger
    ones', so a slow or hostile method that takes its whole time limit holds no place for long; at
    most twice `parallel_submissions` run in all, which bounds the memory they can hold.
    """

    def __init__(
        self,
        store: PgrStore,
        bench: TaskBench,
        repository: SnapshotRepository,
        runs: RunExecutor,
        journal: RunJournal,
        *,
        timeout_s: float,
        margins: Margins,
        ceilings: Ceilings,
        reference: Callable[[], Awaitable[dict[str, float]]],
        parallel_runs: int = 1,
        parallel_submissions: int = 1,
        gpus: Callable[[RunRef, StrongMode], float] = lambda ref, mode: 0.0,
    ) -> None:
        self._store = store
        self._bench = bench
        self.repository = repository
        self._runs = runs
        self._journal = journal
        self._gpus = gpus
        self._timeout_s = timeout_s
        self._margins = margins
        self._ceilings = ceilings
        self._reference = reference
        self._parallel_runs = parallel_runs
        self._parallel_submissions = parallel_submissions
        # parallel runs share the cores instead of oversubscribing them (torch threads spin on busy cores)
        threads = max(1, (os.cpu_count() or 1) // (parallel_runs * parallel_submissions))
        self._threads = f"OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        requeued = await self._store.requeue_running()
        if requeued:
            logger.info("re-running %d submissions that were running when the server stopped", requeued)
        running: dict[str, CpuAgeing] = {}  # agent -> its running submission's age (one running each)

        def finished(agent: str, _: asyncio.Task[None]) -> None:
            del running[agent]
            self._wake.set()

        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()  # before looking, so that a submission made meanwhile wakes the next look
                while self._has_place(running.values()):
                    submission = await self._store.next_queued(busy=running.keys())
                    if submission is None:
                        break
                    ageing = CpuAgeing(time.time(), self._timeout_s * FULL_CPU_FRACTION)
                    running[submission.agent] = ageing
                    group.create_task(self._run_guarded(submission, ageing)).add_done_callback(
                        functools.partial(finished, submission.agent)
                    )
                with contextlib.suppress(TimeoutError):  # a look every few seconds: a running one may have aged
                    await asyncio.wait_for(self._wake.wait(), timeout=5)

    def _has_place(self, running: Collection[CpuAgeing]) -> bool:
        """Whether one more submission may start beside the `running` ones (only the young hold a place)."""
        young = sum(1 for ageing in running if ageing.young(time.time()))
        return young < self._parallel_submissions and len(running) < 2 * self._parallel_submissions

    async def _run_guarded(self, submission: SubmissionRecord, ageing: CpuAgeing) -> None:
        """Run one submission; a crash fails it alone, never the queue."""
        try:
            await self.run(submission, ageing)
        except Exception:
            logger.exception("submission %s crashed the worker", submission.id)
            await self._store.update(
                submission.id, state="failed", error="server error (the operator has the log)",
                finished_at=time.time(),
            )  # fmt: skip
            await asyncio.to_thread(self._journal.forget, submission.id)

    async def run(self, submission: SubmissionRecord, ageing: CpuAgeing) -> None:
        """Run `submission` to a verdict, its runs weighted by `ageing` (which started with it)."""
        submission_id = submission.id
        logger.info("running %s (%s %s)", submission_id, submission.snapshot[:12], submission.entry_point)
        done = await asyncio.to_thread(self._journal.finished, submission_id)  # a restart's head start
        await self._store.update(submission_id, state="running", started_at=ageing.started_at, progress_done=len(done))
        deadline = time.monotonic() + self._timeout_s
        try:
            code = await self.repository.read_all(submission.snapshot)
            mode = await self._declared_mode(submission_id, submission.entry_point, code, ageing)
            await self._store.update(submission_id, mode=mode)
            await self._ceilings(mode)
            refs = await asyncio.to_thread(self._journal.plan, submission_id, self._bench.plan_runs)
            finished = sum(1 for ref in refs if ref.run_id in done)
            await self._store.update(submission_id, progress_total=len(refs), progress_done=finished)
            lanes = asyncio.Semaphore(self._parallel_runs)

            async def run(ref: RunRef) -> str:
                nonlocal finished
                if ref.run_id in done:
                    return done[ref.run_id]
                async with lanes:
                    predictions = await self._run(submission, ref, mode, code, deadline, ageing)
                await asyncio.to_thread(self._journal.record, submission_id, ref.run_id, predictions)
                finished += 1
                await self._store.update(submission_id, progress_done=finished)
                return predictions

            try:
                async with asyncio.TaskGroup() as group:
                    runs = [group.create_task(run(ref)) for ref in refs]
            except BaseExceptionGroup as errors:  # the first failed run ends the submission, the rest are cancelled
                failed = errors.subgroup(_Failed)
                if failed is None:
                    raise
                raise failed.exceptions[0] from None
            scored = [(ref, await self._score(ref, task.result(), mode)) for ref, task in zip(refs, runs, strict=True)]
        except _Failed as failure:
            logger.info("%s failed: %s", submission_id, failure.category)
            await self._store.update(submission_id, state="failed", error=str(failure), finished_at=time.time())
            await asyncio.to_thread(self._journal.forget, submission_id)
            return
        for ref, score in scored:
            await self._store.record_evaluation(
                agent=submission.agent,
                kind="submission",
                task=ref.task,
                split="test",
                submission_id=submission_id,
                seed=ref.seed,
                control=ref.control,
                predictions_sha256=score[1],
                accuracy=score[0].acc_w2s,
                pgr=score[0].pgr,
            )
        verdict = judge(
            run_outcomes([(ref, score[0]) for ref, score in scored], list(self._bench.scored)),
            {name: task.spec.family for name, task in self._bench.scored.items()},
            set(self._bench.secret),
            self._margins,
            await self._reference(),
        )
        await self._store.update(
            submission_id,
            state=verdict.state,
            results=verdict.results,
            flags=verdict.flags,
            pgr_mean=verdict.pgr_mean,
            finished_at=time.time(),
        )
        await asyncio.to_thread(self._journal.forget, submission_id)
        logger.info("finished %s: %s", submission_id, verdict.state)

    async def _job(self, request: RunRequest, category: str) -> str:
        """Run one request; its output file's text, or _Failed by category."""
        outcome = await self._runs.execute(request)
        if outcome.state is not JobState.SUCCEEDED:
            logger.info(
                "run %s failed on %s (%s, %s); end of its log:\n%s",
                request.run_id, outcome.node, outcome.state, outcome.limit_hit, outcome.log_tail,
            )  # fmt: skip
            if outcome.unschedulable:
                raise _Failed("capacity")
            if outcome.limit_hit == Limit.TIMEOUT:
                raise _Failed("timeout")
            raise _Failed("limit" if outcome.limit_hit else "error")
        if outcome.output is None:
            raise _Failed(category)
        return outcome.output

    async def _declared_mode(
        self, submission_id: str, entry_point: str, code: dict[str, bytes], ageing: CpuAgeing
    ) -> StrongMode:
        """The mode the method declares, read in a run of its own (without weights, like any frozen run)."""
        command = f"python -m servers.w2s.runner --entry {shlex.quote(entry_point)} --declare-mode mode.txt"
        request = RunRequest(
            f"{submission_id}-mode", FROZEN, dict(code), command, DECLARE_TIMEOUT_S, "mode.txt", ageing=ageing
        )
        try:
            mode = await self._job(request, "import")
        except _Failed:
            raise _Failed("import") from None
        if mode.strip() not in (FROZEN, FINETUNE):
            raise _Failed("import")
        return FINETUNE if mode.strip() == FINETUNE else FROZEN

    async def _run(
        self,
        submission: SubmissionRecord,
        ref: RunRef,
        mode: StrongMode,
        code: dict[str, bytes],
        deadline: float,
        ageing: CpuAgeing,
    ) -> str:
        bundle = await self._bench.run(self._bench.bundle, ref, mode)
        entry = shlex.quote(submission.entry_point)
        command = f"{self._threads} python -m servers.w2s.runner --entry {entry} --bundle run.pt --out predictions.txt"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failed("timeout")
        request = RunRequest(
            f"{submission.id}-{ref.run_id[:8]}", mode, {**code, "run.pt": bundle}, command, remaining,
            "predictions.txt", gpus=self._gpus(ref, mode), ageing=ageing,
        )  # fmt: skip
        return await self._job(request, "predictions")

    async def _score(self, ref: RunRef, predictions: str, mode: StrongMode) -> tuple[RunScore, str]:
        try:
            score = await self._bench.run(self._bench.score_run, ref, predictions, mode)
        except ValueError:
            raise _Failed("predictions") from None
        return score, hashlib.sha256(predictions.encode()).hexdigest()
