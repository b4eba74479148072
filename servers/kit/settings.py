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
    sqlite_synchronous: str = Field(
        default="NORMAL",
        pattern="^(FULL|NORMAL)$",
        description="WAL with NORMAL survives kill -9 of the server; FULL also survives power loss, at a cost.",
    )

    storage_max_file_bytes: int = Field(default=1_000_000, ge=1)
    storage_max_snapshot_bytes: int = Field(default=3_000_000, ge=1, description="Below the 4 MiB HTTP body cap.")
    storage_max_files: int = Field(default=500, ge=1)
    storage_max_diff_chars: int = Field(default=200_000, ge=1)

    sandbox_limits: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of SandboxLimits (servers/sandbox/limits.py), e.g. '{\"memory_mib\": 2048}'.",
    )
    sandbox_gpu_devices: list[str] = Field(
        default_factory=list, description='GPU device nodes to share between jobs, e.g. ["/dev/nvidia0"].'
    )
    sandbox_unsafe_no_isolation: bool = Field(
        default=False, description="Run commands WITHOUT bubblewrap. Never with untrusted agents."
    )

    @property
    def identity_db(self) -> Path:
        return self.data_dir / "identity.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return Settings()
