"""For every tool of every server: a valid call and invalid calls with the error each must give.

`prepare` creates what the calls refer to (a post, two snapshots) through the same client,
and the cases are functions of what it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp import Client

Args = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ToolCase:
    valid: Args
    invalid: list[tuple[Args, str]] = field(default_factory=list)


async def prepare_forum(client: Client) -> dict[str, Any]:
    result = await client.call_tool("post", {"title": "Seed", "body": "confidence loss helps", "kind": "finding"})
    assert not result.is_error, result.content
    return {"post": result.structured_content["id"]}  # type: ignore[index]


async def prepare_storage(client: Client) -> dict[str, Any]:
    ids = []
    for content in ("print(1)\n", "print(2)\n"):
        result = await client.call_tool("save", {"files": {"method.py": content}, "message": "seed"})
        assert not result.is_error, result.content
        ids.append(result.structured_content["id"])  # type: ignore[index]
    return {"first": ids[0], "second": ids[1]}


FORUM: dict[str, ToolCase] = {
    "post": ToolCase(
        valid=lambda c: {
            "title": "Aux loss",
            "body": "**works**",
            "kind": "result",
            "tags": ["aux"],
            "snapshot": "abc1234",
            "submission": "sub_1",
        },
        invalid=[
            (lambda c: {"body": "b", "kind": "idea"}, "title"),
            (lambda c: {"title": "t", "body": "b", "kind": "rant"}, "kind"),
            (lambda c: {"title": "t" * 201, "body": "b", "kind": "idea"}, "title"),
            (lambda c: {"title": "t", "body": "b", "kind": "idea", "tags": ["Bad Tag"]}, "tags"),
            (lambda c: {"title": "t", "body": "b", "kind": "idea", "tags": [f"t{i}" for i in range(11)]}, "tags"),
            (lambda c: {"title": "t", "body": "b", "kind": "idea", "snapshot": "not-a-hash"}, "snapshot"),
        ],
    ),
    "reply": ToolCase(
        valid=lambda c: {"post_id": c["post"], "body": "agreed"},
        invalid=[
            (lambda c: {"post_id": 999999, "body": "x"}, "no post with id 999999"),
            (lambda c: {"post_id": c["post"], "body": ""}, "body"),
            (lambda c: {"post_id": "one", "body": "x"}, "post_id"),
        ],
    ),
    "read_thread": ToolCase(
        valid=lambda c: {"post_id": c["post"]},
        invalid=[(lambda c: {"post_id": 999999}, "no post with id 999999"), (lambda c: {}, "post_id")],
    ),
    "feed": ToolCase(
        valid=lambda c: {"since": 0, "limit": 10},
        invalid=[
            (lambda c: {"since": -1}, "since"),
            (lambda c: {"limit": 1000}, "limit"),
            (lambda c: {"kind": "rant"}, "kind"),
        ],
    ),
    "search": ToolCase(
        valid=lambda c: {"query": "confidence"},
        invalid=[(lambda c: {"query": ""}, "query"), (lambda c: {"query": "!!! ???"}, "no words to search for")],
    ),
    "vote": ToolCase(
        valid=lambda c: {"post_id": c["post"], "value": 1},
        invalid=[
            (lambda c: {"post_id": c["post"], "value": 5}, "value"),
            (lambda c: {"post_id": 999999, "value": 1}, "no post"),
        ],
    ),
}

STORAGE: dict[str, ToolCase] = {
    "save": ToolCase(
        valid=lambda c: {"files": {"method.py": "print(3)\n"}, "message": "third", "based_on": c["first"]},
        invalid=[
            (lambda c: {"files": {"../escape.py": "x"}, "message": "m"}, "'..' are not allowed"),
            (lambda c: {"files": {"/etc/passwd": "x"}, "message": "m"}, "absolute paths are not allowed"),
            (lambda c: {"files": {".git/hooks/post-commit": "x"}, "message": "m"}, "'.git'"),
            (lambda c: {"files": {"a.py": "x"}, "message": ""}, "message"),
            (lambda c: {"files": {"big.bin": "x" * 1_000_001}, "message": "m"}, "over the limit"),
            (lambda c: {"files": {"a.py": "x"}, "message": "m", "based_on": "HEAD~1"}, "based_on"),
            (lambda c: {"files": {"a.py": "x"}, "message": "m", "based_on": "deadbeefdead"}, "no snapshot"),
            (lambda c: {"files": {}, "message": "m"}, "nothing to save"),
            (
                lambda c: {"files": {}, "message": "m", "based_on": c["first"], "delete": ["missing.py"]},
                "cannot delete",
            ),
        ],
    ),
    "list_snapshots": ToolCase(
        valid=lambda c: {"limit": 5},
        invalid=[(lambda c: {"author": "Not An Agent"}, "author"), (lambda c: {"limit": 0}, "limit")],
    ),
    "get_snapshot": ToolCase(
        valid=lambda c: {"snapshot": c["first"]},
        invalid=[(lambda c: {"snapshot": "deadbeefdead"}, "no snapshot"), (lambda c: {"snapshot": "HEAD"}, "snapshot")],
    ),
    "read_file": ToolCase(
        valid=lambda c: {"snapshot": c["first"], "path": "method.py"},
        invalid=[
            (lambda c: {"snapshot": c["first"], "path": "../../etc/passwd"}, "'..' are not allowed"),
            (lambda c: {"snapshot": c["first"], "path": "missing.py"}, "has no file 'missing.py'"),
        ],
    ),
    "diff": ToolCase(
        valid=lambda c: {"from_snapshot": c["first"], "to_snapshot": c["second"]},
        invalid=[(lambda c: {"from_snapshot": c["first"], "to_snapshot": "deadbeefdead"}, "no snapshot")],
    ),
    "log": ToolCase(
        valid=lambda c: {"snapshot": c["second"]},
        invalid=[
            (lambda c: {"snapshot": "xyz"}, "snapshot"),
            (lambda c: {"snapshot": c["second"], "limit": 0}, "limit"),
        ],
    ),
}

CASES: dict[str, dict[str, ToolCase]] = {"forum": FORUM, "storage": STORAGE}
PREPARE: dict[str, Callable[[Client], Awaitable[dict[str, Any]]]] = {"forum": prepare_forum, "storage": prepare_storage}
