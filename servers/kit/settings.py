"""Settings for every server, read once from `AAR_*` environment variables or `.env`.

Every field has a default so that a first run needs no configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "aar-lab"


class Settings(BaseSettings):
    """Where data lives, where servers listen, and the limits they enforce."""

    model_config = SettingsConfigDict(env_prefix="AAR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Private data of every server.")
    host: str = Field(default="127.0.0.1", description="Address the HTTP servers bind to.")
    port: int = Field(default=8700, ge=0, le=65535, description="Port of `aar serve ... --http`.")
    http_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes that share the port of `aar serve forum --http` (the forum keeps no per-session"
        " state, so any process can answer any call); other servers take 1.",
    )
    shutdown_grace_s: float = Field(
        default=1.0,
        gt=0,
        description="After Ctrl-C or SIGTERM, how long `aar serve` waits for a clean stop before it exits anyway"
        " (acknowledged writes are committed; running jobs end with the server and are marked lost).",
    )
    sqlite_synchronous: str = Field(
        default="NORMAL",
        pattern="^(FULL|NORMAL)$",
        description="WAL with NORMAL survives kill -9 of the server; FULL also survives power loss, at a cost.",
    )

    sqlite_readers: int = Field(
        default=4, ge=1, le=64, description="Reader connections per SQLite store: reads wait only when all are busy."
    )

    forum_search_max_terms: int = Field(
        default=8, ge=1, le=64, description="Distinct words one search may hold (repeats count once)."
    )
    forum_search_candidates: int = Field(
        default=100,
        ge=20,
        description="A search ranks at most this many matches, the newest (all of them for a rarer word).",
    )
    forum_search_budget_ms: int = Field(
        default=1000,
        ge=0,
        description="CPU time one search may spend inside SQLite before it is stopped (waiting does not count).",
    )
    forum_posts_per_minute: int = Field(default=30, ge=1, description="Posts and replies per agent per minute.")
    forum_post_bytes_per_hour: int = Field(
        default=300_000, ge=1, description="Bytes of titles and bodies an agent may post per hour."
    )
    forum_votes_per_minute: int = Field(default=60, ge=1, description="Votes per agent per minute.")
    forum_thread_page_chars: int = Field(
        default=100_000, ge=1, description="A read_thread page stops adding replies once their bodies reach this."
    )

    storage_max_file_bytes: int = Field(default=1_000_000, ge=1)
    storage_max_snapshot_bytes: int = Field(default=3_000_000, ge=1, description="Below the 4 MiB HTTP body cap.")
    storage_max_files: int = Field(default=500, ge=1)
    storage_max_diff_chars: int = Field(default=50_000, ge=1, description="Most diff characters one call returns.")
    storage_max_read_chars: int = Field(
        default=50_000, ge=1, description="Most characters of a file one read_file call returns (page for more)."
    )

    sandbox_limits: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of SandboxLimits (servers/sandbox/limits.py), e.g. '{\"memory_mib\": 2048}'.",
    )
    sandbox_gpu_devices: list[str] = Field(
        default_factory=list, description='GPU device nodes to share between jobs, e.g. ["/dev/nvidia0"].'
    )
    sandbox_model_dirs: list[Path] = Field(
        default_factory=list,
        description="Host folders of staged model weights (task packs with local models), read-only at the same"
        ' path inside every sandbox, e.g. ["/models"].',
    )
    sandbox_unsafe_no_isolation: bool = Field(
        default=False, description="Run commands WITHOUT bubblewrap. Never with untrusted agents."
    )

    executor: str = Field(
        default="local",
        pattern="^(local|ray)$",
        description="Where sandbox commands and official PGR runs execute: 'local' (this machine) or 'ray' (the"
        " Ray cluster at AAR_RAY_ADDRESS; the servers and their files stay here, see docs/cluster.md).",
    )
    ray_address: str = Field(
        default="auto", description="The Ray cluster under AAR_EXECUTOR=ray: 'auto' (this machine's head) or host:port."
    )
    ray_node_dir: Path = Field(
        default=Path("/tmp/aar-ray"),  # noqa: S108 - scratch on each worker node, not on the server
        description="Node-local folder on each Ray worker for sandboxes (workspaces, job logs, official runs).",
    )
    ray_run_retries: int = Field(
        default=3, ge=0, le=20, description="Times an official run is retried on another node when its node dies."
    )
    ray_run_cpus: float = Field(default=1, gt=0, description="CPUs one official run reserves on a Ray node.")
    ray_run_gpus: float = Field(
        default=0, ge=0, description="GPUs one official run of a task with an hf-causal-lm strong model reserves."
    )
    ray_sandbox_gpus: float = Field(
        default=0, ge=0, description="GPUs a sandbox job gets under AAR_EXECUTOR=ray unless it asks for a number."
    )

    pgr_tasks_dir: Path | None = Field(default=None, description="Task packs to score (default: the shipped ones).")
    w2s_cache_dir: Path | None = Field(
        default=None, description="Feature and baseline cache (default DATA_DIR/w2s-cache)."
    )
    pgr_seeds: int = Field(default=5, ge=1, le=50, description="Seeds per task in an official submission.")
    pgr_evaluations_per_hour: int = Field(default=20, ge=0, description="Quick validation scores per agent per hour.")
    pgr_submissions_per_hour: int = Field(default=6, ge=0, description="Official submissions per agent per hour.")
    pgr_team_evaluations_per_hour: int = Field(default=60, ge=0, description="Quick scores per hour, whole team.")
    pgr_team_submissions_per_hour: int = Field(default=18, ge=0, description="Submissions per hour, whole team.")
    pgr_submission_timeout_s: float = Field(default=1800, gt=0, description="Wall clock of one submission's runs.")
    pgr_parallel_runs: int = Field(default=2, ge=1, le=64, description="Runs of one submission at a time.")
    pgr_parallel_submissions: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Submissions scored at once, each of a different agent (1: one at a time). One past a tenth"
        " of its time limit gives its place up and runs on at a falling CPU weight, up to twice this many in all.",
    )
    pgr_cpu_weight: int = Field(
        default=25,
        ge=1,
        le=10000,
        description="CPU weight of official scoring beside the sandbox's agents (100 = equal; cgroups only): at"
        " 25 an agent's command waits behind no queued score, and scoring takes what agents leave idle.",
    )
    pgr_secret_tasks_dir: Path | None = Field(
        default=None,
        description="Secret transfer task packs of the operator's choosing (default: one derived in secret from"
        " WordNet on first start, kept in DATA_DIR/pgr/secret-tasks).",
    )
    pgr_control_margin: float = Field(
        default=0.25,
        description="Flag a method that scores within this PGR of its real score with its teacher's labels"
        " shuffled (scored orientation-free).",
    )
    pgr_decoy_margin: float = Field(
        default=1.0, description="Flag a method that scores this much more PGR on the real tasks than on decoys."
    )
    pgr_transfer_margin: float = Field(
        default=0.5,
        description="Flag a method whose public-minus-secret PGR exceeds the reference method's by this much.",
    )

    @property
    def cache_dir(self) -> Path:
        return self.w2s_cache_dir or self.data_dir / "w2s-cache"

    @property
    def secret_tasks_dir(self) -> Path:
        return self.pgr_secret_tasks_dir or self.data_dir / "pgr" / "secret-tasks"

    @property
    def public_tasks_dir(self) -> Path:
        """Public task inputs (no labels), which every sandbox sees read-only at /tasks."""
        return self.data_dir / "public" / "tasks"

    @property
    def identity_db(self) -> Path:
        return self.data_dir / "identity.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return Settings()
