"""What the PGR server's tools take and return, and the typed records its modules pass each other.

The wire models (field descriptions are what an agent reads) come first; `TaskOutcome`,
`SubmissionRecord` and `QuickQuery` stay on the server: they hold exact scores and the queue's
bookkeeping, which agents only ever see through the coarse wire models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field

from servers.kit.timestamps import UtcTimestamp

if TYPE_CHECKING:  # the testbed needs numpy and torch; the console reads these records without them
    from servers.w2s.controls import Control

TaskName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="A task name from task_info.")]
EntryPoint = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}\.py:[A-Za-z_][A-Za-z0-9_]{0,100}$",
        description="File in the snapshot and function name, e.g. 'method.py:method'.",
    ),
]
SubmissionId = Annotated[str, Field(pattern=r"^sub_[0-9a-f]{12}$", description="An id returned by submit.")]


class TaskOut(BaseModel):
    name: str
    description: str
    sizes: dict[str, int] = Field(description="Examples in the train, validation and test splits.")
    acc_weak: float = Field(description="Teacher accuracy on the validation split (seed 0).")
    acc_ceiling: float = Field(description="Strong model trained on ground truth, validation split (seed 0).")
    inputs: str = Field(description="Public inputs inside your sandbox (no labels).")


class ScoringBudget(BaseModel):
    evaluations_per_hour: int
    evaluations_left: int = Field(description="Yours this hour (the team's share may run out first).")
    team_evaluations_left: int
    submissions_per_hour: int
    submissions_left: int
    team_submissions_left: int


class Preparing(BaseModel):
    done: int = Field(description="Task seeds prepared so far.")
    total: int
    seconds_left: float | None = Field(description="Estimate; null until the first seed is done.")


class TaskInfo(BaseModel):
    ready: bool = Field(description="False while the scorer prepares its data (minutes on a first start).")
    preparing: Preparing | None
    tasks: list[TaskOut] = Field(description="The public tasks (empty until ready).")
    secret_tasks: int = Field(description="Secret transfer tasks that official scores also average over.")
    method_api: str = Field(description="Where the method API is: read the resource, do not expect it here.")
    budget: ScoringBudget


class QuickScore(BaseModel):
    task: str
    accuracy: float = Field(description="Validation accuracy on a grid of 0.02.")
    pgr: float | None = Field(description="PGR of that coarse accuracy, rounded to 0.01; null if undefined.")
    repeated: bool = Field(
        description="True if these predictions differ from an earlier query of the team in under 5% of examples:"
        " you get that query's answer again, and no budget is used."
    )
    evaluations_left: int


class Progress(BaseModel):
    done: int
    total: int


class TaskResult(BaseModel):
    task: str
    secret: bool = Field(description="A secret transfer task: its data is never shown, only this row.")
    pgr_mean: float | None = Field(description="Mean PGR over seeds on the hidden test split, on a grid of 0.05.")
    pgr_se: float | None = Field(description="Its standard error, on a grid of 0.05.")
    seeds: int
    shuffled_pgr: float | None = Field(
        description="PGR of a run whose teacher's labels were shuffled, scored orientation-free (grid 0.05)."
    )
    decoy_pgr: float | None = Field(
        description="PGR of a run whose teacher taught a decoy labelling, against the decoy's labels (grid 0.05)."
    )


class Submission(BaseModel):
    id: str
    agent: str
    snapshot: str
    entry_point: str
    state: str = Field(description="queued, running, done (official), flagged, failed or quarantined.")
    queue_position: int = Field(description="Submissions ahead of this one (0 when running or finished).")
    progress: Progress
    pgr_mean: float | None = Field(description="Mean over tasks (secret ones included) of the per-task PGR.")
    mode: str | None = Field(description="frozen or finetune, as the method declared it (null until known).")
    results: list[TaskResult]
    flags: list[str]
    error: str | None = Field(description="Why it failed: a category only; the method's output is never shown.")
    derived_from: list[str] = Field(description="Other agents' snapshots in this snapshot's storage ancestry.")
    same_code_as: str | None = Field(description="An earlier submission with exactly this code, if any.")
    created_at: UtcTimestamp
    started_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None


class LeaderboardRow(BaseModel):
    rank: int
    agent: str
    submission_id: str
    snapshot: str
    entry_point: str
    pgr_mean: float
    tasks: dict[str, float | None] = Field(description="Mean PGR per task, the secret transfer task's included.")
    derived_from: list[str] = Field(description="Other agents' snapshots this one builds on (storage ancestry).")
    same_code_as: str | None = Field(description="An earlier submission with exactly this code, if any.")
    finished_at: UtcTimestamp


class Leaderboard(BaseModel):
    rows: list[LeaderboardRow] = Field(description="Official results only, best first.")


@dataclass(frozen=True)
class TaskOutcome:
    """A task's exact scores over a submission's runs (never shown as they are: see servers.pgr.verdict)."""

    task: str
    pgr_mean: float | None
    pgr_se: float | None
    seeds: int
    shuffled_pgr: float | None
    decoy_pgr: float | None

    def control_pgr(self, control: Control) -> float | None:
        """The mean PGR of this task's runs under `control` ('shuffled' or 'decoy')."""
        if control == "shuffled":
            return self.shuffled_pgr
        if control == "decoy":
            return self.decoy_pgr
        raise ValueError(f"no control runs of kind {control!r}")


class SubmissionRecord(BaseModel):
    """A row of the submission queue, as the store keeps it (times in Unix seconds)."""

    id: str
    seq: int
    agent: str
    snapshot: str
    entry_point: str
    state: str
    progress_done: int
    progress_total: int
    pgr_mean: float | None
    results: list[TaskResult]
    flags: list[str]
    error: str | None
    mode: str | None
    code_sha256: str | None
    derived_from: list[str]
    same_code_as: str | None
    quarantined_by: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class QuickQuery:
    """A quick query the team made on a task: its predictions and the coarse answer it got."""

    predictions: str
    accuracy: float
    pgr: float | None
