"""SQLite access shared by the servers: a writer and a pool of readers per store, WAL, durable writes.

Every store owns aiosqlite connections: one writer and a pool of readers. aiosqlite runs each
connection on its own thread and executes its calls in order, so the writer is the single
writer of this process and reads (WAL) never wait behind it nor see uncommitted rows; a read
takes a free reader from the pool, so it waits behind another read only when every reader is
busy. A read may carry a `stop` check that SQLite calls every few hundred virtual-machine steps
(a time budget); closing the store stops every running read the same way, so a server shuts
down at once whatever it is reading;
`BEGIN IMMEDIATE` plus a busy timeout keeps a second process (a stdio server
for Claude Desktop beside an HTTP one) from failing with "database is locked".
Each aiosqlite call is a hop to the connection's thread and back (a queue put, a wake-up, the GIL
handed over twice), which under load costs more than the SQL: a read is one hop, and `write` runs
a whole transaction as one function on the writer's thread (see bench/README.md).
A write returns only after COMMIT into the WAL, so an acknowledged write survives kill -9
of the server; `synchronous=FULL` (setting AAR_SQLITE_SYNCHRONOUS) also makes it survive
a power loss, at the price of an fsync per write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
READERS = 4
PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two calls of a read's `stop` check."""

T = TypeVar("T")
StopCheck = Callable[[], bool]
"""Called from the reader's thread while a read runs; True interrupts it."""


class ReadStopped(Exception):
    """A read was interrupted: its `stop` check said so, or the store is closing."""


class _Reader:
    """A reader connection and the stop check of the read it runs now, if any."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self.stop: StopCheck | None = None
        self.closing = False

    def progress(self) -> int:
        return int(self.closing or (self.stop is not None and self.stop()))


class Database:
    """An open SQLite file with its schema applied."""

    def __init__(self, writer: aiosqlite.Connection, readers: list[_Reader], path: Path) -> None:
        self._writer = writer
        self._readers = readers
        self._free: asyncio.Queue[_Reader] = asyncio.Queue()
        for reader in readers:
            self._free.put_nowait(reader)
        self._write_lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: Path, schema: str, *, synchronous: str = "NORMAL", readers: int = READERS) -> Database:
        """Open (creating if needed) the file at `path`, apply `schema` (idempotent DDL), open `readers` readers."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        await _set_wal(writer)
        await writer.execute(f"PRAGMA synchronous = {synchronous}")
        await writer.executescript(schema)
        pool = []
        for _ in range(readers):
            reader = _Reader(await _connect(path))
            await reader.connection.set_progress_handler(reader.progress, PROGRESS_STEPS)
            pool.append(reader)
        logger.debug("opened %s with %d readers", path, readers)
        return cls(writer, pool, path)

    async def close(self) -> None:
        """Stop every running read, then close every connection."""
        for reader in self._readers:
            reader.closing = True
        for reader in self._readers:
            await reader.connection.close()
        await self._writer.close()

    async def add_columns(self, migrations: Mapping[str, Mapping[str, str]]) -> None:
        """Add the columns (table -> column -> declaration) that a file made by an older release lacks."""
        for table, columns in migrations.items():
            present = {row["name"] for row in await self.fetch_all(f"PRAGMA table_info({table})")}
            async with self.transaction() as connection:
                for column, declaration in columns.items():
                    if column not in present:
                        await connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` as one write transaction on the writer's thread: commits when it returns, rolls back if it raises.

        One hop to the thread however many statements `work` runs; `work` must not block on anything
        but SQLite. Once started it runs to COMMIT even if the caller is cancelled (the next write
        queues behind it on the same thread).
        """

        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

        async with self._write_lock:
            return await _on_thread(self._writer, transaction)

    @asynccontextmanager
    async def _read(self, stop: StopCheck | None) -> AsyncIterator[aiosqlite.Connection]:
        """A free reader for one read, interrupted when `stop()` turns true or the store closes."""
        reader = await self._free.get()
        reader.stop = stop
        try:
            yield reader.connection
        except sqlite3.OperationalError as error:
            if str(error) == "interrupted":
                raise ReadStopped("closing" if reader.closing else "stopped") from None
            raise
        finally:
            reader.stop = None
            self._free.put_nowait(reader)

    async def fetch_all(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, stop: StopCheck | None = None
    ) -> list[aiosqlite.Row]:
        async with self._read(stop) as reader:
            return list(await reader.execute_fetchall(sql, params))

    async def fetch_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, stop: StopCheck | None = None
    ) -> aiosqlite.Row | None:
        def first(connection: sqlite3.Connection) -> aiosqlite.Row | None:
            cursor = connection.execute(sql, params)
            try:
                return cursor.fetchone()  # type: ignore[no-any-return]
            finally:
                cursor.close()  # a statement left open would hold this reader's snapshot

        async with self._read(stop) as reader:
            return await _on_thread(reader, first)

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run several writes as one transaction."""
        async with self.transaction() as connection:
            for sql, params in statements:
                await connection.execute(sql, params)


async def _on_thread(connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work(the sqlite3 connection)` on the aiosqlite connection's own thread, in its queue: one hop.

    aiosqlite has no public call for this; `_execute` (its queue) and `_conn` are stable across 0.x.
    """
    return await connection._execute(work, connection._conn)  # type: ignore[no-untyped-call,no-any-return]


async def _set_wal(connection: aiosqlite.Connection) -> None:
    """Switch the file to WAL. Two processes opening a new file at once (forum workers) can get SQLITE_BUSY
    here without SQLite calling its busy handler, so this waits and retries up to the busy timeout itself."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _connect(path: Path) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = aiosqlite.Row
    await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await connection.execute("PRAGMA foreign_keys = ON")
    return connection


class ReadOnlyFile:
    """A store's SQLite file opened read-only (`mode=ro`), for a reader in another process (the console).

    Each query opens its own connection: WAL lets it read while the server writes, and it can never
    write. A file that does not exist yet, or whose schema is not applied yet, reads as no rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            connection.row_factory = sqlite3.Row
            return [dict(row) for row in connection.execute(sql, params)]
        except sqlite3.OperationalError as error:
            if "no such table" in str(error):
                return []
            raise
        finally:
            connection.close()
