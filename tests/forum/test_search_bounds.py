"""No search can starve the forum: its words are deduplicated and capped, SQLite stops it at a CPU
budget with a clear error (waiting is not charged), and reads run on a pool of connections, so none
waits behind a search."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from servers.forum.store import SCHEMA, ForumLimits, ForumStore
from servers.kit.database import Database, ReadStopped
from tests.support import call, make_settings, memory_client

pytestmark = pytest.mark.anyio

ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
"""A read that never ends by itself."""


async def _seed(client, posts: int) -> None:  # type: ignore[no-untyped-def]
    for number in range(posts):
        body = f"confidence weighting number {number} " + "common words in every post " * 15
        await call(client, "post", {"title": f"post {number}", "body": body, "kind": "note"})


async def test_repeated_prefix_terms_count_once_and_distinct_terms_are_capped(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice:
        await _seed(alice, 3)
        hostile = "co*" * 166  # 166 prefix terms in 498 characters
        repeated = (await call(alice, "search", {"query": hostile}))["hits"]
        single = (await call(alice, "search", {"query": "co*"}))["hits"]
        assert [h["post"]["id"] for h in repeated] == [h["post"]["id"] for h in single] and len(single) == 3
        too_many = await alice.call_tool("search", {"query": " ".join(f"word{n}" for n in range(9))})
        message = too_many.content[0].text  # type: ignore[union-attr]
        assert too_many.is_error and "9 different words" in message and "AAR_FORUM_SEARCH_MAX_TERMS" in message
        short = await alice.call_tool("search", {"query": "c*"})
        assert short.is_error and "too short" in short.content[0].text  # type: ignore[union-attr]


async def test_a_search_past_its_time_budget_is_stopped_with_a_clear_error(data_dir: Path) -> None:
    budget = {"forum_search_budget_ms": 0, "forum_posts_per_minute": 1000}
    async with memory_client("forum", data_dir, "alice", **budget) as alice:
        await _seed(alice, 150)  # enough rows for SQLite to call the progress handler
        stopped = await alice.call_tool("search", {"query": "common words"})
        message = stopped.content[0].text  # type: ignore[union-attr]
        assert stopped.is_error and "time budget of 0 ms" in message and "AAR_FORUM_SEARCH_BUDGET_MS" in message
        assert len((await call(alice, "feed", {"limit": 200}))["posts"]) == 150  # the forum answers on


async def test_a_running_read_does_not_hold_up_the_feed(data_dir: Path) -> None:
    path = data_dir / "forum.sqlite"
    store = ForumStore(await Database.open(path, SCHEMA, readers=2), ForumLimits.of(make_settings(data_dir)))
    database = store._database
    await store.create_post(author="alice", kind="note", title="t", body="b", tags=[])
    started, release = threading.Event(), threading.Event()

    def held() -> bool:
        """Holds the read inside SQLite until the test releases it."""
        started.set()
        release.wait()
        return True

    async def search() -> None:
        with pytest.raises(ReadStopped):
            await database.fetch_all(ENDLESS, stop=held)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(search)
            await anyio.to_thread.run_sync(started.wait)
            with anyio.fail_after(30):  # guards against a hang; no timing is measured
                feed = await store.feed(since=0, limit=10, tag=None, kind=None, author=None)
            release.set()
        assert [post.title for post in feed.posts] == ["t"]
    finally:
        release.set()
        await store.close()


async def test_closing_the_store_stops_a_running_read(data_dir: Path) -> None:
    """What lets a server under a runaway query stop on SIGTERM."""
    store = await ForumStore.open(data_dir / "forum.sqlite", settings=make_settings(data_dir))
    running = threading.Event()

    def watch() -> bool:
        running.set()
        return False

    async def endless() -> None:
        with pytest.raises(ReadStopped, match="closing"):
            await store._database.fetch_all(ENDLESS, stop=watch)

    async with anyio.create_task_group() as group:
        group.start_soon(endless)
        await anyio.to_thread.run_sync(running.wait)
        with anyio.fail_after(30):  # guards against a hang; no timing is measured
            await store.close()


async def test_time_spent_waiting_for_a_reader_is_not_charged_to_a_search(data_dir: Path) -> None:
    """On a busy server a search may wait for a reader longer than its budget; only its own work counts."""
    settings = make_settings(data_dir, forum_search_budget_ms=50)
    path = data_dir / "forum.sqlite"
    store = ForumStore(await Database.open(path, SCHEMA, readers=1), ForumLimits.of(settings, limit_writes=False))
    for number in range(150):  # enough rows for SQLite to call the budget's check
        body = f"confidence weighting number {number} " + "common words in every post " * 15
        await store.create_post(author="alice", kind="note", title=f"post {number}", body=body, tags=[])
    started, release = threading.Event(), threading.Event()

    def held() -> bool:
        """Holds the only reader, without using CPU, until the test releases it."""
        started.set()
        release.wait()
        return True

    async def hold_the_reader() -> None:
        with pytest.raises(ReadStopped):
            await store._database.fetch_all(ENDLESS, stop=held)

    found: list[int] = []

    async def search() -> None:
        results = await store.search("common words", limit=5, tag=None, kind=None, author=None)
        found.extend(hit.post.id for hit in results.hits)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(hold_the_reader)
            await anyio.to_thread.run_sync(started.wait)
            group.start_soon(search)
            await anyio.sleep(0.3)  # the search waits for the reader six times its budget
            release.set()
        assert len(found) == 5
    finally:
        release.set()
        await store.close()
