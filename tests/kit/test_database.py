"""The shared SQLite access: a write transaction in one hop commits or rolls back whole; reads see the latest commit."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from servers.kit.database import Database

pytestmark = pytest.mark.anyio

SCHEMA = "CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL)"


async def test_a_read_sees_the_last_write_even_after_a_read_that_stopped_at_its_first_row(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "t.sqlite", SCHEMA, readers=1)
    try:
        await database.write(lambda c: c.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)]))
        first = await database.fetch_one("SELECT x FROM t ORDER BY x")
        assert first is not None and first["x"] == 1
        await database.write(lambda c: c.execute("INSERT INTO t VALUES (0)"))
        first = await database.fetch_one("SELECT x FROM t ORDER BY x")
        assert first is not None and first["x"] == 0
    finally:
        await database.close()


async def test_a_write_that_raises_stores_nothing_and_the_next_write_works(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "t.sqlite", SCHEMA)

    def half_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t VALUES (1)")
        raise ValueError("refused")

    try:
        with pytest.raises(ValueError, match="refused"):
            await database.write(half_then_fail)
        assert await database.fetch_all("SELECT x FROM t") == []
        assert await database.write(lambda c: c.execute("INSERT INTO t VALUES (2) RETURNING x").fetchall()[0]["x"]) == 2
        assert [row["x"] for row in await database.fetch_all("SELECT x FROM t")] == [2]
    finally:
        await database.close()
    with sqlite3.connect(tmp_path / "t.sqlite") as check:  # committed, as seen from another connection
        assert check.execute("SELECT x FROM t").fetchall() == [(2,)]


def _open_at_once(path: Path, start: Any) -> None:
    """In a process of its own: wait for the others, then open the file (the forum's workers all start at once)."""
    start.wait(60)

    async def open_and_close() -> None:
        database = await Database.open(path, SCHEMA, readers=1)
        await database.close()

    asyncio.run(open_and_close())


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Switching a new file to WAL could fail at once with 'database is locked' in all but one of several
    processes (SQLite does not call its busy handler there): a forum with AAR_HTTP_WORKERS then failed to start."""
    context = multiprocessing.get_context("spawn")
    for attempt in range(5):
        path = tmp_path / f"new-{attempt}.sqlite"
        start = context.Barrier(6)
        processes = [context.Process(target=_open_at_once, args=(path, start)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
            process.kill()  # one left hanging fails the test below, and goes with it
        assert [process.exitcode for process in processes] == [0] * 6, attempt
