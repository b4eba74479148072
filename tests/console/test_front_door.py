"""The console comes in by the front door: it reads through the stores' read-only readers and writes
only through the servers' own tools, as `human:NAME`."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from client.console.front import FrontDoor, ServerLinks, ToolRefused
from client.run_manifest import ToolCatalogue
from client.servers import LaunchedServers
from servers.kit import manifest as server_manifests
from servers.kit.database import ReadOnlyFile
from servers.kit.errors import ToolInputError
from servers.kit.identity import TokenStore, operator_identity, validate_identity
from tests.console.support import make_run

pytestmark = pytest.mark.anyio

CLIENT = Path(__file__).resolve().parents[2] / "client"
SQL = re.compile(
    r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\b.+\bSET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b", re.I | re.S
)
FORBIDDEN_IMPORTS = ("sqlite3", "aiosqlite", "servers.kit.database")
ALLOWED_STORES = {"TokenStore"}
"""Agents' and operators' tokens are minted through the identity module's own API."""


def _modules() -> list[Path]:
    return sorted(CLIENT.rglob("*.py"))


def test_no_module_under_client_runs_sql_or_opens_a_store_for_writing() -> None:
    problems = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        where = path.relative_to(CLIENT.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                problems.append(f"{where}:{node.lineno}: SQL {node.value[:40]!r}")
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [alias.name for alias in node.names]
                for name in [module, *names] if module else names:
                    if name and name.startswith(FORBIDDEN_IMPORTS):
                        problems.append(f"{where}:{node.lineno}: imports {name}")
                if module and module.startswith("servers."):
                    problems += [
                        f"{where}:{node.lineno}: imports the store {name}"
                        for name in names
                        if name.endswith("Store") and name not in ALLOWED_STORES
                    ]
    assert problems == []


def test_the_check_finds_sql_and_a_store_import() -> None:
    """The check above would fail on what the console did before."""
    before = 'from servers.forum.store import ForumStore\nx = "SELECT p.id FROM posts p WHERE p.kind = ?"\n'
    tree = ast.parse(before)
    nodes = ast.walk(tree)
    constants = [node.value for node in nodes if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert any(SQL.search(value) for value in constants)
    assert any(isinstance(n, ast.ImportFrom) and n.names[0].name == "ForumStore" for n in ast.walk(tree))


async def test_the_readers_cannot_write(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    forum = ReadOnlyFile(run_dir.servers_dir / "forum.sqlite")
    assert forum.rows("SELECT count(*) AS n FROM posts") == [{"n": 1}]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        forum.rows("DELETE FROM posts")
    assert forum.rows("SELECT count(*) AS n FROM posts") == [{"n": 1}]
    assert ReadOnlyFile(tmp_path / "absent.sqlite").rows("SELECT 1") == []


async def test_an_operator_has_an_identity_and_a_token_no_agent_can_have(tmp_path: Path) -> None:
    assert operator_identity("ada") == "human:ada" and validate_identity("human:ada") == "human:ada"
    for wrong in ("human:Ada", "robot:ada", "human:"):
        with pytest.raises(ToolInputError):
            validate_identity(wrong)
    store = await TokenStore.open(tmp_path / "identity.sqlite")
    try:
        token = await store.create("human:ada")
        assert await store.agent_for(token) == "human:ada"
    finally:
        await store.close()


async def test_a_live_console_never_starts_a_second_server(tmp_path: Path) -> None:
    door = FrontDoor(tmp_path, live=True)
    with pytest.raises(ToolRefused, match="still starting"):
        await door.call("ada", "forum", "post", {"title": "t", "body": "b", "kind": "note"})
    door.links = ServerLinks(urls={"forum": "http://127.0.0.1:9/forum/mcp"})
    with pytest.raises(ToolRefused, match="aar tokens create human:ada"):
        await door.call("ada", "forum", "post", {"title": "t", "body": "b", "kind": "note"})


async def test_a_live_console_posts_over_http_with_the_operators_own_token(tmp_path: Path) -> None:
    """As `aar run` does: the server launched from its manifest, the operator's token minted beside the agents'."""
    launched = LaunchedServers(tmp_path / "data", tmp_path / "servers.log", env={}, unsafe_no_isolation=False)
    try:
        urls = await launched.start(["forum"])
        tokens = await launched.create_tokens(["alpha", "human:ada"])
        door = FrontDoor(launched.data_dir, live=True, links=ServerLinks(urls, {"human:ada": tokens["human:ada"]}))
        post = await door.call("ada", "forum", "post", {"title": "From the console", "body": "b", "kind": "note"})
        assert post["author"] == "human:ada"
        with pytest.raises(ToolRefused, match="title"):
            await door.call("ada", "forum", "post", {"title": "", "body": "b", "kind": "note"})
    finally:
        launched.stop()


def test_no_run_offers_an_agent_the_operators_tools() -> None:
    catalogue = ToolCatalogue.load()
    assert "pgr__quarantine" not in catalogue.names(["pgr"]) and "pgr__submit" in catalogue.names(["pgr"])
    assert any(tool["name"] == "quarantine" for tool in server_manifests.load("pgr")["tools"])
