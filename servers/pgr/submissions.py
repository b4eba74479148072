"""Running submissions: the queue worker that runs a snapshot's method in a sandbox and scores it.

One submission at a time (the machine is the limit): its snapshot is checked out into a fresh
workspace of the server's own sandbox with test-split bundles for every task and seed, each also
with the teacher's labels shuffled, under random names and in random order. The method runs
there, never in this process; only its '0'/'1' predictions come back, scored here against labels
the sandbox never held. A method that does as well without its teacher is flagged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shlex
import time
from typing import Any

import numpy as np

from servers.kit.errors import ToolInputError
from servers.pgr.store import PgrStore
from servers.pgr.testbed import BundleRef, TaskBench, summarise
from servers.sandbox.service import Sandbox
from servers.storage.repository import SnapshotRepository

logger = logging.getLogger(__name__)

PROGRESS = re.compile(r"done (\d+)/(\d+)")
LOG_TAIL_CHARS = 4000


def teacher_effect(results: list[dict[str, Any]]) -> float | None:
    """Mean over tasks of PGR with the real teacher minus PGR with its labels shuffled."""
    gaps = [
        row["pgr_mean"] - row["control_pgr_mean"]
        for row in results
        if row["pgr_mean"] is not None and row["control_pgr_mean"] is not None
    ]
    return float(np.mean(gaps)) if gaps else None


class SubmissionWorker:
    """Takes queued submissions in order and runs each to a result."""

    def __init__(
        self,
        store: PgrStore,
        bench: TaskBench,
        repository: SnapshotRepository,
        sandbox: Sandbox,
        *,
        timeout_s: float,
        control_margin: float,
    ) -> None:
        self._store = store
        self._bench = bench
        self.repository = repository
        self._sandbox = sandbox
        self._timeout_s = timeout_s
        self._control_margin = control_margin
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        requeued = await self._store.requeue_running()
        if requeued:
            logger.info("re-running %d submissions that were running when the server stopped", requeued)
        while True:
            submission = await self._store.next_queued()
            if submission is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=5)
                except TimeoutError:
                    pass
                continue
            try:
                await self.run(submission)
            except Exception as error:  # one broken submission must not stop the queue
                logger.exception("submission %s crashed the worker", submission["id"])
                await self._store.update(
                    submission["id"], state="failed", error=f"server error: {error}", finished_at=time.time()
                )

    async def run(self, submission: dict[str, Any]) -> None:
        submission_id = submission["id"]
        logger.info("running %s (%s %s)", submission_id, submission["snapshot"][:12], submission["entry_point"])
        await self._store.update(submission_id, state="running", started_at=time.time(), progress_done=0)
        try:
            code = await self.repository.read_all(submission["snapshot"])
            refs, bundles = await self._bench.run(self._bench.make_bundles)
            await self._sandbox.import_files(submission_id, {**code, **bundles})
            await self._run_method(submission_id, submission["entry_point"], len(refs))
            scores = await self._score(submission_id, refs)
        except _MethodFailed as failure:
            await self._store.update(submission_id, state="failed", error=str(failure), finished_at=time.time())
            return
        finally:
            await self._sandbox.remove_workspace(submission_id)
        for ref, score in scores:
            await self._store.record_evaluation(
                agent=submission["agent"],
                kind="submission",
                task=ref.task,
                split="test",
                submission_id=submission_id,
                seed=ref.seed,
                control=ref.control,
                predictions_sha256=score["predictions_sha256"],
                accuracy=score["acc_w2s"],
                pgr=score["pgr"],
            )
        await self._store.update(submission_id, finished_at=time.time(), **self._outcome(scores))
        logger.info("finished %s", submission_id)

    async def _run_method(self, submission_id: str, entry_point: str, total: int) -> None:
        command = f"python -m servers.w2s.runner --entry {shlex.quote(entry_point)} --bundles inputs --outputs outputs"
        job_id = await self._sandbox.start_job(submission_id, "submission", command, self._timeout_s)
        done = 0
        while True:
            info = await self._sandbox.job_status(submission_id, job_id)
            tail = (await self._sandbox.job_logs(submission_id, job_id, None, 4096)).text
            counts = PROGRESS.findall(tail)
            if counts and int(counts[-1][0]) != done:
                done = int(counts[-1][0])
                await self._store.update(submission_id, progress_done=done, progress_total=total)
            if info.finished:
                break
            await asyncio.sleep(0.5)
        if info.state != "succeeded":
            log = (await self._sandbox.job_logs(submission_id, job_id, None, LOG_TAIL_CHARS)).text
            reason = info.error or f"exit code {info.exit_code}"
            raise _MethodFailed(f"the method failed ({reason}); end of its log:\n{_without_progress(log)}")

    async def _output(self, submission_id: str, path: str) -> str:
        try:
            return (await self._sandbox.read_file(submission_id, path)).text
        except ToolInputError:
            raise _MethodFailed(f"the run left no {path}") from None

    async def _score(self, submission_id: str, refs: list[BundleRef]) -> list[tuple[BundleRef, dict[str, Any]]]:
        mode = (await self._output(submission_id, "outputs/mode.txt")).strip()
        if mode not in ("frozen", "finetune"):
            raise _MethodFailed(f"the runner reported an unknown strong-model mode {mode!r}")
        scores = []
        for ref in refs:
            predictions = await self._output(submission_id, f"outputs/{ref.bundle_id}.txt")
            try:
                score = await self._bench.run(self._bench.score_bundle, ref, predictions, mode)
            except ValueError as error:
                raise _MethodFailed(f"unusable predictions: {error}") from None
            score["predictions_sha256"] = hashlib.sha256(predictions.encode()).hexdigest()
            scores.append((ref, score))
        return scores

    def _outcome(self, scores: list[tuple[BundleRef, dict[str, Any]]]) -> dict[str, Any]:
        """State, per-task results, flags and the overall PGR of a scored run."""
        results = summarise(scores)
        defined = [row["pgr_mean"] for row in results if row["pgr_mean"] is not None]
        effect = teacher_effect(results)
        flags = []
        if effect is not None and effect < self._control_margin:
            flags.append(
                f"ignores-teacher: with the teacher's labels shuffled it loses only {effect:.2f} PGR"
                f" (needs {self._control_margin:.2f}); kept off the leaderboard"
            )
        return {
            "state": "flagged" if flags else "done",
            "results": results,
            "flags": flags,
            "pgr_mean": float(np.mean(defined)) if defined else None,
            "progress_done": len(scores),
        }


class _MethodFailed(Exception):
    """The submitted method (not the server) failed; its message goes to the submitter."""


def _without_progress(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if not PROGRESS.fullmatch(line.strip()))[-LOG_TAIL_CHARS:]
