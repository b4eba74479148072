"""SQLite access shared by the servers: a writer and a reader connection per store, WAL, durable writes.

Every store owns two aiosqlite connections, a writer and a reader. aiosqlite runs each
connection on its own thread and executes its calls in order, so the writer is the single
writer of this process and reads (WAL) never wait behind it nor see uncommitted rows;
`BEGIN IMMEDIATE` plus a busy timeout keeps a second process (a stdio server
for Claude Desktop beside an HTTP one) from failing with "database is locked".
A write returns only after COMMIT into the WAL, so an acknowledged write survives kill -9
of the server; `synchronous=FULL` (setting AAR_SQLITE_SYNCHRONOUS) also makes it survive
a power loss, at the price of an fsync per write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


class Database:
    """An open SQLite file with its schema applied."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection, path: Path) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: Path, schema: str, *, synchronous: str = "NORMAL") -> Database:
        """Open (creating if needed) the file at `path` and apply `schema` (idempotent DDL)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path)
        await writer.execute("PRAGMA journal_mode = WAL")
        await writer.execute(f"PRAGMA synchronous = {synchronous}")
        await writer.executescript(schema)
        reader = await _connect(path)
        logger.debug("opened %s", path)
        return cls(writer, reader, path)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

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

    async def fetch_all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[aiosqlite.Row]:
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> aiosqlite.Row | None:
        async with self._reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def execute_many(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run several writes as one transaction."""
        async with self.transaction() as connection:
            for sql, params in statements:
                await connection.execute(sql, params)


async def _connect(path: Path) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = aiosqlite.Row
    await connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await connection.execute("PRAGMA foreign_keys = ON")
    return connection
