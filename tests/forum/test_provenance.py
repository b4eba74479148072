"""What a post cites exists, and a result reports the poster's own submission (issue 10, item 7).

Snapshots are saved through storage's repository and submissions made through the PGR
server's own `submit` tool, once for the module; every post goes through the forum's tools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from servers.storage.store import open_repository
from tests.support import call, fingerprint, make_settings, memory_client, pgr_ready

pytestmark = pytest.mark.anyio

METHOD = "from servers.w2s.methods.plain_ce import plain_ce as method\n"


async def _cited_work(data_dir: Path) -> dict[str, Any]:
    """alice: first -> second -> scored (built on bob's), submitted, then later; bob: his own, submitted."""
    repository = await open_repository(make_settings(data_dir))

    async def save(agent: str, text: str, based_on: str | None = None) -> str:
        saved = await repository.save(
            agent=agent, files={"method.py": METHOD + f"TAG = {text!r}\n"}, message=text, based_on=based_on, delete=[]
        )
        return saved.id

    work = {"first": await save("alice", "# 1\n"), "second": await save("alice", "# 2\n")}
    work["bobs"] = await save("bob", "# bob\n")
    work["scored"] = await save("alice", "# 3\n", based_on=work["bobs"])
    for agent, snapshot in (("alice", "scored"), ("bob", "bobs")):
        async with memory_client("pgr", data_dir, agent) as pgr:
            await pgr_ready(pgr)  # distinct code per snapshot: the scorer refuses uncredited copies
            submitted = await call(pgr, "submit", {"snapshot": work[snapshot], "entry_point": "method.py:method"})
            work[f"{agent}_submission"] = submitted["id"]
    work["later"] = await save("alice", "# 4\n")
    return work


@pytest.fixture(scope="module")
def cited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("provenance") / "data"
    return data_dir, anyio.run(_cited_work, data_dir)


def _stored(data_dir: Path) -> str:
    servers = ["forum", "storage", *(["pgr"] if (data_dir / "pgr.sqlite").exists() else [])]
    return "\n".join(fingerprint(server, data_dir) for server in servers)


async def _refused(data_dir: Path, agent: str, arguments: dict[str, Any], expected: str) -> None:
    """The post fails naming `expected`, and the forum, storage and PGR records are as they were."""
    async with memory_client("forum", data_dir, agent) as forum:
        await call(forum, "post", {"title": "kept", "body": "an earlier post", "kind": "note"})
        before = _stored(data_dir)
        result = await forum.call_tool("post", {"title": "t", "body": "b", **arguments})
        message = " ".join(getattr(part, "text", "") for part in result.content)
        assert result.is_error and expected in message, message
        assert _stored(data_dir) == before


async def test_a_result_citing_its_own_submission_is_stored_with_the_full_snapshot_id(
    cited: tuple[Path, dict[str, Any]],
) -> None:
    data_dir, work = cited
    result = {"title": "r", "body": "b", "kind": "result", "submission": work["alice_submission"]}
    async with memory_client("forum", data_dir, "alice") as alice:
        plain = await call(alice, "post", result)
        exact = await call(alice, "post", {**result, "snapshot": work["scored"][:9]})
        earlier = await call(alice, "post", {**result, "snapshot": work["first"]})
    assert plain["snapshot"] is None and plain["submission"] == work["alice_submission"]
    assert exact["snapshot"] == work["scored"]
    assert earlier["snapshot"] == work["first"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"kind": "result"}, "must cite the PGR submission behind it"),
        ({"kind": "result", "snapshot": "scored"}, "must cite the PGR submission behind it"),
        ({"kind": "result", "submission": "bob_submission"}, "is bob's, not yours"),
        ({"kind": "result", "submission": "alice_submission", "snapshot": "bobs"}, "nor one of your snapshots"),
        ({"kind": "result", "submission": "alice_submission", "snapshot": "later"}, "nor one of your snapshots"),
        ({"kind": "finding", "snapshot": "deadbeef0000"}, "which storage does not have"),
        ({"kind": "finding", "submission": "sub_000000000000"}, "which the PGR server does not have"),
        ({"kind": "result", "submission": "sub_000000000000"}, "which the PGR server does not have"),
    ],
)
async def test_a_post_citing_what_does_not_exist_or_is_not_the_posters_is_refused(
    cited: tuple[Path, dict[str, Any]], arguments: dict[str, str], expected: str
) -> None:
    data_dir, work = cited
    arguments = {key: work.get(value, value) for key, value in arguments.items()}
    await _refused(data_dir, "alice", arguments, expected)


async def test_other_posts_may_cite_anyones_existing_snapshot_and_submission(
    cited: tuple[Path, dict[str, Any]],
) -> None:
    data_dir, work = cited
    async with memory_client("forum", data_dir, "alice") as alice:
        cites = {"submission": work["bob_submission"], "snapshot": work["bobs"]}
        about_bob = await call(alice, "post", {"title": "bob's run", "body": "b", "kind": "finding", **cites})
    assert (about_bob["submission"], about_bob["snapshot"]) == (work["bob_submission"], work["bobs"])


async def test_before_storage_or_pgr_hold_anything_nothing_can_be_cited_and_neither_is_created(data_dir: Path) -> None:
    await _refused(data_dir, "alice", {"kind": "finding", "snapshot": "abc1234"}, "which storage does not have")
    await _refused(data_dir, "alice", {"kind": "idea", "submission": "sub_1"}, "which the PGR server does not have")
    assert not (data_dir / "storage.git").exists() and not (data_dir / "pgr.sqlite").exists()
