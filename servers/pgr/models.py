"""What the PGR server's tools return."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TaskOut(BaseModel):
    name: str
    description: str
    sizes: dict[str, int] = Field(description="Examples in the train, validation and test splits.")
    acc_weak: float = Field(description="Teacher accuracy on the validation split (seed 0).")
    acc_ceiling: float = Field(description="Strong model trained on ground truth, validation split (seed 0).")
    inputs: str = Field(description="Public inputs inside your sandbox (no labels).")


class Budget(BaseModel):
    evaluations_per_hour: int
    evaluations_left: int
    submissions_per_hour: int
    submissions_left: int


class TaskInfo(BaseModel):
    tasks: list[TaskOut]
    method_api: str = Field(description="How to write a method; also the resource w2s://method-api.")
    budget: Budget


class QuickScore(BaseModel):
    task: str
    accuracy: float = Field(description="Validation accuracy, rounded to 0.01.")
    pgr: float | None = Field(description="Validation PGR, rounded to 0.01; null if undefined.")
    evaluations_left: int


class Progress(BaseModel):
    done: int
    total: int


class TaskResult(BaseModel):
    task: str
    pgr_mean: float | None
    pgr_se: float | None
    acc_mean: float | None
    control_pgr_mean: float | None = Field(description="PGR with the teacher's labels shuffled.")
    control_pgr_se: float | None
    control_acc_mean: float | None
    seeds: int


class Submission(BaseModel):
    id: str
    agent: str
    snapshot: str
    entry_point: str
    state: str = Field(description="queued, running, done (official), flagged, failed or quarantined.")
    queue_position: int = Field(description="Submissions ahead of this one (0 when running or finished).")
    progress: Progress
    pgr_mean: float | None = Field(description="Mean over tasks of the per-task mean PGR (test split).")
    results: list[TaskResult]
    flags: list[str]
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class LeaderboardRow(BaseModel):
    rank: int
    agent: str
    submission_id: str
    snapshot: str
    entry_point: str
    pgr_mean: float
    tasks: dict[str, float | None] = Field(description="Mean PGR per task.")
    finished_at: float


class Leaderboard(BaseModel):
    rows: list[LeaderboardRow] = Field(description="Official results only, best first.")
