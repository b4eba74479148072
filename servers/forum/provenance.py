"""What a post cites must exist, and a result must report the poster's own work.

A post's snapshot is looked up in storage's repository, and its submission in the PGR
server's SQLite file, both only read: the forum never changes what the other servers keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from servers.kit.errors import NotFoundError, PermissionDeniedError, ToolInputError
from servers.kit.settings import Settings
from servers.storage.store import SnapshotRepository, open_repository

PGR_FILE = "pgr.sqlite"
STORAGE_DIR = "storage.git"


@dataclass(frozen=True)
class CitedSubmission:
    id: str
    agent: str
    snapshot: str


class Provenance:
    """Checks a post's references against storage and the PGR server's records."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pgr_file = settings.data_dir / PGR_FILE
        self._repository: SnapshotRepository | None = None

    async def check(self, *, author: str, kind: str, snapshot: str | None, submission: str | None) -> str | None:
        """The full id of the cited snapshot, once every reference is checked; raises what is wrong and what to do."""
        if kind == "result" and submission is None:
            raise ToolInputError(
                "a post of kind 'result' must cite the PGR submission behind it: submit your snapshot with the"
                " PGR server's `submit` and pass the id it returns as `submission`, or post as kind 'finding'"
            )
        snapshot_id = None if snapshot is None else await self._snapshot(snapshot)
        if submission is None:
            return snapshot_id
        cited = await self._submission(submission)
        if kind != "result":
            return snapshot_id
        if cited.agent != author:
            raise PermissionDeniedError(
                f"submission {cited.id} is {cited.agent}'s, not yours: a 'result' reports your own submission;"
                f" to discuss {cited.agent}'s, reply to their post or post a 'finding' citing it"
            )
        if snapshot_id is not None and not await self._behind(snapshot_id, cited.snapshot, author):
            raise ToolInputError(
                f"snapshot {snapshot_id[:12]} is not what submission {cited.id} scored ({cited.snapshot[:12]}) nor one"
                f" of your snapshots it was built from: cite {cited.snapshot[:12]}, or leave `snapshot` out"
            )
        return snapshot_id

    async def _storage(self) -> SnapshotRepository | None:
        """Storage's repository, or None while nobody has saved anything yet."""
        if self._repository is None and (self._settings.data_dir / STORAGE_DIR / "HEAD").exists():
            self._repository = await open_repository(self._settings)
        return self._repository

    async def _snapshot(self, snapshot: str) -> str:
        repository = await self._storage()
        with contextlib.suppress(NotFoundError):
            if repository is not None:
                return await repository.resolve(snapshot)
        raise NotFoundError(
            f"the post cites snapshot {snapshot!r}, which storage does not have (or the prefix is ambiguous):"
            " cite an id that storage's `save` returned or `list_snapshots` shows"
        )

    async def _behind(self, snapshot: str, scored: str, author: str) -> bool:
        """Whether `snapshot` is the scored one, or one of `author`'s that the scored one was built from."""
        if snapshot == scored:
            return True
        repository = await self._storage()
        assert repository is not None  # the snapshot was found in it
        if not await repository.is_ancestor(snapshot, scored):
            return False
        return (await repository.snapshot(snapshot)).author == author

    async def _submission(self, submission: str) -> CitedSubmission:
        row = await asyncio.to_thread(_read_submission, self._pgr_file, submission)
        if row is None:
            raise NotFoundError(
                f"the post cites submission {submission!r}, which the PGR server does not have:"
                " cite an id that the PGR server's `submit` returned"
            )
        return row


def _read_submission(path: Path, submission: str) -> CitedSubmission | None:
    """The submission's row in the PGR server's file, opened read-only; None if either does not exist."""
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as connection:
        try:
            row = connection.execute(
                "SELECT id, agent, snapshot FROM submissions WHERE id = ?", (submission,)
            ).fetchone()
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return None
            raise
    return None if row is None else CitedSubmission(*row)
