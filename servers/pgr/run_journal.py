"""What an official submission has already run, kept on the server's disk so that a restart resumes it.

The plan (run ids with their task, seed and control) and each finished run's predictions live in
DATA_DIR/pgr/runs/<submission id>/, which only the server reads (it names the controls). A server
restarted while runs are out (locally or on a cluster) keeps the plan and reruns only the runs with
no predictions here, under the same ids; the folder goes once the verdict is stored.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from servers.pgr.testbed import RunRef

__all__ = ["RunJournal"]


class RunJournal:
    """Plans and finished predictions of the submissions in progress, one folder each."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def plan(self, submission_id: str, make: Callable[[], list[RunRef]]) -> list[RunRef]:
        """The submission's recorded plan, or a new one from `make`, recorded before any run starts."""
        path = self._folder(submission_id) / "plan.json"
        if path.exists():
            return [RunRef(**row) for row in json.loads(path.read_text())]
        refs = make()
        _write(path, json.dumps([dataclasses.asdict(ref) for ref in refs]))
        return refs

    def finished(self, submission_id: str) -> dict[str, str]:
        """{run id: predictions} of the runs that finished before (a restart's head start)."""
        folder = self._folder(submission_id) / "done"
        if not folder.is_dir():
            return {}
        return {path.stem: path.read_text() for path in folder.glob("*.txt")}

    def record(self, submission_id: str, run_id: str, predictions: str) -> None:
        _write(self._folder(submission_id) / "done" / f"{run_id}.txt", predictions)

    def forget(self, submission_id: str) -> None:
        shutil.rmtree(self._folder(submission_id), ignore_errors=True)

    def _folder(self, submission_id: str) -> Path:
        return self._root / submission_id


def _write(path: Path, text: str) -> None:
    """Write whole or not at all: a crash mid-write leaves no half file to trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)
