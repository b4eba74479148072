"""Manifests are generated from the servers, and any drift between the two fails."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from servers import catalog
from servers.kit import manifest
from servers.kit.settings import Settings
from tests.support import AAR, W2S_CACHE, server_env

pytestmark = pytest.mark.anyio


async def test_committed_manifests_match_the_live_servers(tmp_path: Path) -> None:
    for name in catalog.server_names():
        live = await manifest.describe(name, catalog.factory(name)(Settings(data_dir=tmp_path), local_agent="x"))
        assert manifest.drift(manifest.load(name), live) == [], f"run `aar manifest export` and commit {name}.json"


async def test_drift_names_the_tool_and_what_changed(tmp_path: Path) -> None:
    live = await manifest.describe("forum", catalog.factory("forum")(Settings(data_dir=tmp_path), local_agent="x"))
    declared = copy.deepcopy(live)
    declared["tools"][0]["annotations"]["readOnlyHint"] = True
    declared["tools"].append({"name": "delete_everything"})
    assert manifest.drift(declared, live) == [
        "tool 'delete_everything' is declared but the server does not offer it",
        "tool 'post' differs in annotations",
    ]


def test_manifest_check_command_passes_on_a_clean_tree() -> None:
    result = subprocess.run([AAR, "manifest", "export", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_tool_declares_schemas_and_annotations() -> None:
    for name in catalog.server_names():
        for tool in manifest.load(name)["tools"]:
            assert tool["description"] and tool["inputSchema"]["type"] == "object"
            assert tool["outputSchema"]["type"] == "object", f"{name}.{tool['name']} has no structured output"
            assert {"readOnlyHint", "destructiveHint", "idempotentHint"} <= tool["annotations"].keys()


async def test_the_printed_claude_desktop_config_launches_a_working_server(tmp_path: Path) -> None:
    printed = subprocess.run(
        [AAR, "desktop-config", "--format", "desktop"],
        env=server_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(printed.stdout)["mcpServers"]
    assert set(config) == set(catalog.server_names())
    forum = config["forum"]
    assert Path(forum["command"]).is_absolute() and Path(forum["env"]["AAR_DATA_DIR"]).is_absolute()
    params = StdioServerParameters(command=forum["command"], args=forum["args"], env=forum["env"])
    async with Client(params) as client:
        result = await client.call_tool("post", {"title": "from Desktop", "body": "hello", "kind": "note"})
        assert not result.is_error, result.content
    assert (tmp_path / "data" / "forum.sqlite").exists()


def test_claude_code_configs_are_valid_mcp_json(tmp_path: Path) -> None:
    for fmt, kind in (("code", "stdio"), ("code-http", "http")):
        printed = subprocess.run(
            [AAR, "desktop-config", "--format", fmt],
            env=server_env(tmp_path),
            capture_output=True,
            text=True,
            check=True,
        )
        servers = json.loads(printed.stdout)["mcpServers"]
        assert {entry["type"] for entry in servers.values()} == {kind}


def test_the_tool_reference_in_docs_is_generated_from_the_manifests() -> None:
    for name in catalog.server_names():
        path = manifest.DOCS_DIR / f"{name}.md"
        assert path.read_text() == manifest.reference(manifest.load(name)), f"run `aar manifest docs` for {name}"
        for tool in manifest.load(name)["tools"]:
            assert f"## `{tool['name']}`" in path.read_text()


def test_desktop_config_runs_this_aar_with_every_non_default_setting(tmp_path: Path) -> None:
    """Not the first `aar` on PATH, and settings from the shell and .env travel into each block."""
    impostor = tmp_path / "bin" / "aar"
    impostor.parent.mkdir()
    impostor.write_text("#!/bin/sh\necho 'another installation' >&2\nexit 1\n")
    impostor.chmod(0o755)
    (tmp_path / ".env").write_text('AAR_PGR_TASKS_DIR=my-tasks\nAAR_SANDBOX_LIMITS={"memory_mib": 2048}\n')
    env = {**server_env(tmp_path / "data"), "PATH": f"{impostor.parent}:{os.environ['PATH']}"}
    for launcher in ([AAR], [sys.executable, "-m", "client.cli"]):
        printed = subprocess.run(
            [*launcher, "desktop-config", "--format", "desktop"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        for block in json.loads(printed.stdout)["mcpServers"].values():
            assert block["command"] != str(impostor) and Path(block["command"]).is_absolute()
            assert block["command"] == (launcher[0] if launcher == [AAR] else sys.executable)
            assert block["env"]["AAR_PGR_TASKS_DIR"] == str(tmp_path / "my-tasks")
            assert json.loads(block["env"]["AAR_SANDBOX_LIMITS"]) == {"memory_mib": 2048}
            assert block["env"]["AAR_PGR_SEEDS"] == "1" and block["env"]["AAR_W2S_CACHE_DIR"] == str(W2S_CACHE)
            assert "AAR_PORT" not in block["env"]  # defaults stay out
