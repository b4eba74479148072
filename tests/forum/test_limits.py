"""No agent floods the forum, and no result is unbounded: write limits per agent, read_thread in pages."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from servers.forum.store import BYTES_POSTED, DATA_FILE, POSTS_AGING_OUT, RECENT_POSTS
from tests.support import call, fingerprint, memory_client

pytestmark = pytest.mark.anyio


def _post(number: int, body: str = "a finding") -> dict[str, object]:
    return {"title": f"post {number}", "body": body, "kind": "note"}


async def test_posts_and_replies_per_minute_are_limited_per_agent(data_dir: Path) -> None:
    async with (
        memory_client("forum", data_dir, "alice", forum_posts_per_minute=3) as alice,
        memory_client("forum", data_dir, "bob", forum_posts_per_minute=3) as bob,
    ):
        first = await call(alice, "post", _post(1))
        await call(alice, "post", _post(2))
        await call(alice, "reply", {"post_id": first["id"], "body": "and a reply"})
        before = fingerprint("forum", data_dir)
        for tool, arguments in (("post", _post(4)), ("reply", {"post_id": first["id"], "body": "again"})):
            refused = await alice.call_tool(tool, arguments)
            message = refused.content[0].text  # type: ignore[union-attr]
            assert refused.is_error and "AAR_FORUM_POSTS_PER_MINUTE" in message and "resets at" in message
        assert fingerprint("forum", data_dir) == before
        await call(bob, "post", _post(5))  # one agent's limit is not another's


async def test_bytes_posted_per_hour_are_limited_per_agent(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice", forum_post_bytes_per_hour=1000) as alice:
        await call(alice, "post", _post(1, "x" * 600))
        refused = await alice.call_tool("post", _post(2, "é" * 300))
        message = refused.content[0].text  # type: ignore[union-attr]
        assert refused.is_error and "AAR_FORUM_POST_BYTES_PER_HOUR" in message and "resets at" in message
        too_big = await alice.call_tool("post", _post(3, "x" * 1001))
        assert too_big.is_error and "over the 1000 bytes" in too_big.content[0].text  # type: ignore[union-attr]
        await call(alice, "post", _post(4, "y" * 300))  # what fits in the hour still goes


async def test_the_limits_read_one_index_however_much_an_agent_posted(data_dir: Path) -> None:
    """A check whose cost grew with the agent's posts this hour (it read every body) slowed every post of a busy
    forum; now both queries read the (author, created_at, bytes) index only, and the minute's stops at its limit."""
    async with memory_client("forum", data_dir, "alice") as alice:
        await call(alice, "post", _post(1))
    with contextlib.closing(sqlite3.connect(data_dir / DATA_FILE)) as forum:
        for query, parameters in (
            (RECENT_POSTS, ("alice", 0, 30)),
            (BYTES_POSTED, ("alice", 0)),
            (POSTS_AGING_OUT, ("alice", 0)),
        ):
            plan = " ".join(row[-1] for row in forum.execute(f"EXPLAIN QUERY PLAN {query}", parameters))
            assert "COVERING INDEX posts_by_volume" in plan, plan


async def test_a_forum_made_before_sizes_were_kept_counts_its_posts_bytes(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice:
        await call(alice, "post", _post(1, "é" * 300))  # 606 bytes in UTF-8 with its title
    with contextlib.closing(sqlite3.connect(data_dir / DATA_FILE)) as forum:  # as an older release left it
        forum.executescript("DROP INDEX posts_by_volume; ALTER TABLE posts DROP COLUMN bytes;")
    async with memory_client("forum", data_dir, "alice", forum_post_bytes_per_hour=1000) as alice:
        refused = await alice.call_tool("post", _post(2, "x" * 400))
        assert refused.is_error and "you posted 606 bytes" in refused.content[0].text  # type: ignore[union-attr]
        await call(alice, "post", _post(3, "x" * 300))


async def test_votes_per_minute_are_limited_per_agent(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice", forum_votes_per_minute=2) as alice:
        post = await call(alice, "post", _post(1))
        await call(alice, "vote", {"post_id": post["id"], "value": 1})
        await call(alice, "vote", {"post_id": post["id"], "value": -1})
        refused = await alice.call_tool("vote", {"post_id": post["id"], "value": 1})
        assert refused.is_error and "AAR_FORUM_VOTES_PER_MINUTE" in refused.content[0].text  # type: ignore[union-attr]
        assert (await call(alice, "read_thread", {"post_id": post["id"]}))["root"]["score"] == -1


async def test_read_thread_pages_through_replies(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice", forum_thread_page_chars=150) as alice:
        root = await call(alice, "post", _post(0))
        for number in range(5):
            await call(alice, "reply", {"post_id": root["id"], "body": f"reply {number} " + "x" * 60})
        first = await call(alice, "read_thread", {"post_id": root["id"], "limit": 3})
        assert [r["body"][:7] for r in first["replies"]] == ["reply 0", "reply 1"]  # cut at 150 characters
        assert (first["total_replies"], first["next_offset"]) == (5, 2)
        seen, offset = [], 0
        while offset is not None:
            page = await call(alice, "read_thread", {"post_id": root["id"], "offset": offset, "limit": 3})
            seen += [r["body"][:7] for r in page["replies"]]
            offset = page["next_offset"]
        assert seen == [f"reply {n}" for n in range(5)]
        too_many = await alice.call_tool("read_thread", {"post_id": root["id"], "limit": 101})
        assert too_many.is_error and "limit" in too_many.content[0].text
