"""What the console reads of the servers' data under a run directory: through the stores' read-only
readers (their files opened `mode=ro`), never with SQL of its own and never for writing.

A file that does not exist yet (servers still starting, or a run that connected to servers elsewhere)
reads as empty.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servers.forum.store import ForumReader
from servers.pgr.store import PgrReader
from servers.sandbox.config import SandboxConfig
from servers.sandbox.jobs import JobsReader


def iso(timestamp: float | str | None) -> str:
    """A time for a page: from Unix seconds or from an ISO 8601 string (what the servers put on the wire)."""
    if timestamp is None or timestamp == "":
        return ""
    if isinstance(timestamp, str):
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class ServerData:
    """The forum, PGR and sandbox data of one data directory, as the console's pages read it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.forum = ForumReader(data_dir)
        self.pgr = PgrReader(data_dir)
        self.sandboxes = {"agents' sandbox": JobsReader(SandboxConfig(data_dir=data_dir).root)} | {
            f"submissions ({mode})": JobsReader(SandboxConfig(data_dir=runner).root)
            for mode, runner in self.pgr.runner_data_dirs().items()
        }

    def limit_hits(self) -> list[dict[str, Any]]:
        """Background jobs a sandbox limit ended, in the agents' sandbox and in the submissions' ones."""
        hits = [{**row, "sandbox": where} for where, jobs in self.sandboxes.items() for row in jobs.limit_hits()]
        return sorted(hits, key=lambda row: row["created_at"], reverse=True)
