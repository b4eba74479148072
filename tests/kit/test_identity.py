"""Agents are who their token says: no token or a wrong one gets 401, and nobody can post as another."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx2
import pytest

from tests.support import AAR, HttpServer, create_token, server_env

pytestmark = pytest.mark.anyio


def test_a_request_without_a_token_or_with_an_unknown_one_gets_401(http_server: HttpServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for server in ("forum", "storage"):
        assert httpx2.post(http_server.url(server), json=body).status_code == 401
        headers = {"Authorization": "Bearer aar_not-a-real-token"}
        assert httpx2.post(http_server.url(server), json=body, headers=headers).status_code == 401


def test_tokens_are_stored_only_as_digests(http_server: HttpServer) -> None:
    token = http_server.token("alice")
    with sqlite3.connect(http_server.data_dir / "identity.sqlite") as connection:
        rows = connection.execute("SELECT * FROM tokens").fetchall()
    assert rows and all(token not in str(row) for row in rows)


async def test_each_agent_posts_and_saves_only_as_itself(http_server: HttpServer) -> None:
    async with http_server.client("forum", "alice") as alice, http_server.client("forum", "bob") as bob:
        mine = await alice.call_tool("post", {"title": "A", "body": "by alice", "kind": "idea"})
        theirs = await bob.call_tool("post", {"title": "B", "body": "by bob", "kind": "idea"})
        assert mine.structured_content["author"] == "alice"
        assert theirs.structured_content["author"] == "bob"
        forged = await bob.call_tool("post", {"title": "C", "body": "x", "kind": "idea", "author": "alice"})
        assert forged.structured_content["author"] == "bob"  # unknown fields are ignored
    async with http_server.client("storage", "bob") as bob:
        saved = await bob.call_tool("save", {"files": {"m.py": "x"}, "message": "m"})
        assert saved.structured_content["author"] == "bob"


def test_a_new_token_revokes_the_old_one(http_server: HttpServer) -> None:
    old = http_server.token("carol")
    create_token(http_server.data_dir, "carol")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    response = httpx2.post(http_server.url("forum"), json=body, headers={"Authorization": f"Bearer {old}"})
    assert response.status_code == 401


def test_token_creation_rejects_invalid_agent_names(tmp_path: Path) -> None:
    result = subprocess.run(
        [AAR, "tokens", "create", "Bad Name"], env=server_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "invalid agent name" in result.stderr
