"""For every tool of every server: a valid call and invalid calls with the error each must give.

`prepare` creates what the calls refer to (a post, two snapshots) through the same client,
and the cases are functions of what it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from servers.storage.store import open_repository
from tests.support import make_settings, pgr_ready

Args = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ToolCase:
    valid: Args | None
    """None for an operator-only tool: an agent's call is refused (the console's tests make the valid one)."""
    invalid: list[tuple[Args, str]] = field(default_factory=list)


async def prepare_forum(client: Client, data_dir: Path) -> dict[str, Any]:
    result = await client.call_tool("post", {"title": "Seed", "body": "confidence loss helps", "kind": "finding"})
    assert not result.is_error, result.content
    repository = await open_repository(make_settings(data_dir))
    snapshot = await repository.save(agent="alice", files={"aux.py": "x = 1\n"}, message="m", based_on=None, delete=[])
    return {"post": result.structured_content["id"], "snapshot": snapshot.id}


async def prepare_storage(client: Client, data_dir: Path) -> dict[str, Any]:
    ids = []
    for content in ("print(1)\n", "print(2)\n"):
        result = await client.call_tool("save", {"files": {"method.py": content}, "message": "seed"})
        assert not result.is_error, result.content
        ids.append(result.structured_content["id"])
    return {"first": ids[0], "second": ids[1]}


FORUM: dict[str, ToolCase] = {
    "post": ToolCase(
        valid=lambda c: {
            "title": "Aux loss",
            "body": "**works**",
            "kind": "finding",
            "tags": ["aux"],
            "snapshot": c["snapshot"][:7],
        },
        invalid=[
            (lambda c: {"title": "t", "body": "b", "kind": "result"}, "must cite the PGR submission"),
            (lambda c: {"title": "t", "body": "b", "kind": "idea", "snapshot": "deadbeef0"}, "storage does not have"),
            (lambda c: {"title": "t", "body": "b", "kind": "idea", "submission": "sub_1"}, "PGR server does not have"),
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


async def prepare_sandbox(client: Client, data_dir: Path) -> dict[str, Any]:
    written = await client.call_tool("write_file", {"path": "seed.txt", "content": "seed\n"})
    assert not written.is_error, written.content
    saved = await client.call_tool("save_snapshot", {"paths": ["seed.txt"], "message": "seed"})
    assert not saved.is_error, saved.content
    finished = await client.call_tool("start_job", {"name": "quick", "command": "echo done"})
    running = await client.call_tool("start_job", {"name": "sleeper", "command": "sleep 600"})
    disposable = await client.call_tool("start_job", {"name": "disposable", "command": "true"})
    disposable_id = disposable.structured_content["id"]
    with anyio.fail_after(30):
        while (await client.call_tool("job_status", {"job_id": disposable_id})).structured_content["state"] in (
            "queued",
            "running",
        ):
            await anyio.sleep(0.05)
    return {
        "snapshot": saved.structured_content["id"],
        "job": finished.structured_content["id"],
        "running_job": running.structured_content["id"],
        "finished_job": disposable_id,
    }


UNKNOWN_JOB = (lambda c: {"job_id": "nosuchjob"}, "no job 'nosuchjob'")

SANDBOX: dict[str, ToolCase] = {
    "write_file": ToolCase(
        valid=lambda c: {"path": "notes/a.txt", "content": "hello"},
        invalid=[
            (lambda c: {"path": "../escape.txt", "content": "x"}, "invalid path '../escape.txt'"),
            (lambda c: {"path": "/etc/passwd", "content": "x"}, "invalid path '/etc/passwd'"),
            (lambda c: {"path": "a.txt"}, "content"),
        ],
    ),
    "read_file": ToolCase(
        valid=lambda c: {"path": "seed.txt", "limit": 3},
        invalid=[
            (lambda c: {"path": "missing.txt"}, "missing.txt"),
            (lambda c: {"path": "seed.txt", "offset": -1}, "offset"),
        ],
    ),
    "list_files": ToolCase(
        valid=lambda c: {"recursive": True},
        invalid=[(lambda c: {"path": "../.."}, "invalid path")],
    ),
    "exec": ToolCase(
        valid=lambda c: {"command": "echo hi", "timeout_s": 30},
        invalid=[(lambda c: {"command": ""}, "command"), (lambda c: {"command": "true", "timeout_s": -1}, "timeout_s")],
    ),
    "start_job": ToolCase(
        valid=lambda c: {"name": "another", "command": "echo hi"},
        invalid=[(lambda c: {"name": "", "command": "true"}, "name"), (lambda c: {"name": "x"}, "command")],
    ),
    "job_status": ToolCase(valid=lambda c: {"job_id": c["job"]}, invalid=[UNKNOWN_JOB]),
    "job_logs": ToolCase(
        valid=lambda c: {"job_id": c["job"], "offset": 0},
        invalid=[UNKNOWN_JOB, (lambda c: {"job_id": c["job"], "offset": -5}, "offset")],
    ),
    "list_jobs": ToolCase(
        valid=lambda c: {"state": "running"},
        invalid=[(lambda c: {"state": "exploded"}, "state"), (lambda c: {"limit": 0}, "limit")],
    ),
    "cancel_job": ToolCase(valid=lambda c: {"job_id": c["running_job"]}, invalid=[UNKNOWN_JOB]),
    "delete_job": ToolCase(
        valid=lambda c: {"job_id": c["finished_job"]},
        invalid=[UNKNOWN_JOB, (lambda c: {"job_id": c["finished_job"]}, "no job")],  # deleted by the valid call
    ),
    "load_snapshot": ToolCase(
        valid=lambda c: {"snapshot": c["snapshot"]},
        invalid=[(lambda c: {"snapshot": "deadbeefdead"}, "no snapshot"), (lambda c: {"snapshot": "../x"}, "snapshot")],
    ),
    "save_snapshot": ToolCase(
        valid=lambda c: {"paths": ["seed.txt", "notes"], "message": "notes too"},
        invalid=[
            (lambda c: {"paths": ["missing.txt"], "message": "m"}, "missing.txt"),
            (lambda c: {"paths": ["../../etc"], "message": "m"}, "invalid path"),
            (lambda c: {"paths": [], "message": "m"}, "paths"),
        ],
    ),
}


async def prepare_pgr(client: Client, data_dir: Path) -> dict[str, Any]:
    task = (await pgr_ready(client))["tasks"][0]
    repository = await open_repository(make_settings(data_dir))
    method = "from servers.w2s.methods.plain_ce import plain_ce as method\n"
    snapshot = await repository.save(agent="alice", files={"method.py": method}, message="m", based_on=None, delete=[])
    theirs = await repository.save(agent="bob", files={"method.py": method}, message="m", based_on=None, delete=[])
    submitted = await client.call_tool("submit", {"snapshot": snapshot.id, "entry_point": "method.py:method"})
    assert not submitted.is_error, submitted.content
    return {
        "task": task["name"],
        "size": task["sizes"]["validation"],
        "snapshot": snapshot.id,
        "their_snapshot": theirs.id,
        "submission": submitted.structured_content["id"],
    }


PGR: dict[str, ToolCase] = {
    "task_info": ToolCase(
        valid=lambda c: {"task": c["task"]}, invalid=[(lambda c: {"task": "no-such-task"}, "no task 'no-such-task'")]
    ),
    "evaluate_predictions": ToolCase(
        valid=lambda c: {"task": c["task"], "predictions": "0" * c["size"]},
        invalid=[
            (lambda c: {"task": c["task"], "predictions": "0" * (c["size"] - 1)}, "must be exactly"),
            (lambda c: {"task": c["task"], "predictions": "01x"}, "predictions"),
            (lambda c: {"task": "no-such-task", "predictions": "0"}, "no task 'no-such-task'"),
        ],
    ),
    "submit": ToolCase(
        valid=lambda c: {"snapshot": c["snapshot"], "entry_point": "method.py:method"},
        invalid=[
            (lambda c: {"snapshot": "deadbeefdead", "entry_point": "method.py:method"}, "no snapshot"),
            (lambda c: {"snapshot": c["snapshot"], "entry_point": "missing.py:method"}, "no file 'missing.py'"),
            (lambda c: {"snapshot": c["snapshot"], "entry_point": "method.py"}, "entry_point"),
            (lambda c: {"snapshot": c["their_snapshot"], "entry_point": "method.py:method"}, "submit your own work"),
            (lambda c: {"snapshot": c["snapshot"], "entry_point": "/etc/passwd.py:x"}, "entry_point"),
        ],
    ),
    "submission": ToolCase(
        valid=lambda c: {"submission_id": c["submission"]},
        invalid=[
            (lambda c: {"submission_id": "sub_000000000000"}, "no submission 'sub_000000000000'"),
            (lambda c: {"submission_id": "x"}, "submission_id"),
        ],
    ),
    "leaderboard": ToolCase(valid=lambda c: {"limit": 5}, invalid=[(lambda c: {"limit": 0}, "limit")]),
    "quarantine": ToolCase(
        valid=None,
        invalid=[
            (lambda c: {"submission_id": c["submission"]}, "only an operator (human:NAME) may"),
            (lambda c: {"submission_id": "x"}, "submission_id"),
        ],
    ),
}

CASES: dict[str, dict[str, ToolCase]] = {"forum": FORUM, "storage": STORAGE, "sandbox": SANDBOX, "pgr": PGR}
PREPARE: dict[str, Callable[[Client, Path], Awaitable[dict[str, Any]]]] = {
    "forum": prepare_forum,
    "storage": prepare_storage,
    "sandbox": prepare_sandbox,
    "pgr": prepare_pgr,
}
