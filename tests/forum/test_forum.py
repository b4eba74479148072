"""The forum's behaviour: threads, a feed that catches an agent up, ranked search, one vote per agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.support import memory_client

pytestmark = pytest.mark.anyio


async def _post(client: Client, **fields: Any) -> dict[str, Any]:
    result = await client.call_tool("post", {"kind": "finding", "body": "body", **fields})
    assert not result.is_error, result.content
    post: dict[str, Any] = result.structured_content
    return post


async def test_the_feed_returns_only_what_is_new_since_the_cursor(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice, memory_client("forum", data_dir, "bob") as bob:
        await _post(alice, title="one")
        first = (await bob.call_tool("feed", {})).structured_content
        assert [p["title"] for p in first["posts"]] == ["one"]
        await _post(alice, title="two", tags=["aux"])
        await _post(alice, title="three", kind="idea")
        later = (await bob.call_tool("feed", {"since": first["next_cursor"]})).structured_content
        assert [p["title"] for p in later["posts"]] == ["two", "three"]
        caught_up = (await bob.call_tool("feed", {"since": later["next_cursor"]})).structured_content
        assert caught_up["posts"] == [] and caught_up["next_cursor"] == later["next_cursor"]


async def test_the_feed_filters_by_tag_kind_and_author_and_pages(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice, memory_client("forum", data_dir, "bob") as bob:
        await _post(alice, title="a1", tags=["aux"])
        await _post(bob, title="b1", kind="question")
        await _post(bob, title="b2", tags=["aux"])
        by_tag = (await alice.call_tool("feed", {"tag": "aux"})).structured_content
        assert [p["title"] for p in by_tag["posts"]] == ["a1", "b2"]
        by_kind = (await alice.call_tool("feed", {"kind": "question"})).structured_content
        assert [p["title"] for p in by_kind["posts"]] == ["b1"]
        by_author = (await alice.call_tool("feed", {"author": "bob", "limit": 1})).structured_content
        assert [p["title"] for p in by_author["posts"]] == ["b1"] and by_author["has_more"]


async def test_replies_nest_into_one_thread(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice, memory_client("forum", data_dir, "bob") as bob:
        root = await _post(alice, title="claim: reweighting")
        first = (await bob.call_tool("reply", {"post_id": root["id"], "body": "tried it"})).structured_content
        nested = (await alice.call_tool("reply", {"post_id": first["id"], "body": "numbers?"})).structured_content
        thread = (await bob.call_tool("read_thread", {"post_id": nested["id"]})).structured_content
        assert thread["root"]["id"] == root["id"]
        assert [(r["author"], r["parent_id"]) for r in thread["replies"]] == [
            ("bob", root["id"]),
            ("alice", first["id"]),
        ]


async def test_search_ranks_matches_and_shows_snippets(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice:
        await _post(alice, title="Confidence loss", body="The auxiliary confidence loss beats cross-entropy.")
        await _post(alice, title="Reweighting", body="Weighting by confidence helps a little.")
        await _post(alice, title="Unrelated", body="Learning rate sweep.")
        hits = (await alice.call_tool("search", {"query": "confidence"})).structured_content["hits"]
        assert [h["post"]["title"] for h in hits] == ["Confidence loss", "Reweighting"]
        assert "[confidence]" in hits[0]["snippet"].lower()
        prefix = (await alice.call_tool("search", {"query": "reweigh*"})).structured_content["hits"]
        assert [h["post"]["title"] for h in prefix] == ["Reweighting"]
        quoted = (await alice.call_tool("search", {"query": 'loss" OR "x'})).structured_content["hits"]
        assert [h["post"]["title"] for h in quoted] == []  # operators are plain words, never FTS syntax


async def test_each_agent_has_one_changeable_vote_per_post(data_dir: Path) -> None:
    async with memory_client("forum", data_dir, "alice") as alice, memory_client("forum", data_dir, "bob") as bob:
        post = await _post(alice, title="vote on me")
        assert (await alice.call_tool("vote", {"post_id": post["id"], "value": 1})).structured_content["score"] == 1
        assert (await alice.call_tool("vote", {"post_id": post["id"], "value": 1})).structured_content["score"] == 1
        assert (await bob.call_tool("vote", {"post_id": post["id"], "value": -1})).structured_content["score"] == 0
        assert (await alice.call_tool("vote", {"post_id": post["id"], "value": -1})).structured_content["score"] == -2
        assert (await bob.call_tool("vote", {"post_id": post["id"], "value": 0})).structured_content["score"] == -1
