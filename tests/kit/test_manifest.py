"""Manifests are generated from the servers, and any drift between the two fails."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from servers import catalog
from servers.kit import manifest
from servers.kit.settings import Settings
from tests.support import AAR, W2S_CACHE, server_env

pytestmark = pytest.mark.anyio


SCHEMAS = Path(__file__).parent / "schemas"
"""Vendored, with their sources in schemas/README.md."""


async def test_committed_manifests_match_the_live_servers(tmp_path: Path) -> None:
    for name in catalog.server_names():
        live = await manifest.describe(name, catalog.factory(name)(Settings(data_dir=tmp_path), local_agent="x"))
        assert manifest.drift(name, live) == [], f"run `aar manifest export` and commit manifests/servers/{name}/"


async def test_drift_names_what_changed_in_tools_resources_and_prompts(tmp_path: Path) -> None:
    server = catalog.factory("pgr")(Settings(data_dir=tmp_path), local_agent="x")
    live = await manifest.lock("pgr", server)
    declared = copy.deepcopy(live)
    declared["tools"][0]["annotations"]["readOnlyHint"] = not declared["tools"][0]["annotations"]["readOnlyHint"]
    declared["tools"].append({"name": "delete_everything"})
    declared["resources"] = [item for item in declared["resources"] if item["uri"] != "w2s://background"]
    declared["resourceTemplates"][0]["description"] = "changed"
    declared["prompts"] = []
    assert manifest.lock_drift(declared, live) == [
        "tool 'delete_everything' is declared but the server does not offer it",
        f"tool {live['tools'][0]['name']!r} differs in annotations",
        "resource 'w2s://background' is offered but not declared",
        "resource template 'w2s://tasks/{name}' differs in description",
        "prompt 'research_brief' is offered but not declared",
    ]


async def test_a_stale_server_json_or_a_stray_file_is_drift(tmp_path: Path) -> None:
    live = await manifest.describe("forum", catalog.factory("forum")(Settings(data_dir=tmp_path), local_agent="x"))
    changed = copy.deepcopy(live)
    changed["server.json"]["description"] = "something else"
    del changed["manifest.json"]
    assert manifest.drift("forum", changed) == [
        "manifest.json is committed but no longer generated",
        "server.json differs",
    ]


def test_manifest_check_command_passes_on_a_clean_tree() -> None:
    result = subprocess.run([AAR, "manifest", "export", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = json.loads((SCHEMAS / "server.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    for name in catalog.server_names():
        declared = manifest.load(name, "server.json")
        errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(declared)]
        assert errors == [], f"{name}/server.json: {errors}"
        assert declared["$schema"] == schema["$id"] and len(declared["description"]) <= 100
        package = declared["packages"][0]
        assert (package["registryType"], package["identifier"], package["transport"]) == (
            "pypi", "aar-lab", {"type": "stdio"},
        )  # fmt: skip
        variables = {variable["name"]: variable for variable in package["environmentVariables"]}
        assert "AAR_DATA_DIR" in variables and all(v["description"] for v in variables.values())
        assert [header["name"] for header in declared["remotes"][0]["headers"]] == ["Authorization"]
        assert declared["remotes"][0]["headers"][0]["isSecret"]


def test_each_server_json_lists_the_settings_its_server_reads_and_no_others() -> None:
    variables = {
        name: {v["name"] for v in manifest.load(name, "server.json")["packages"][0]["environmentVariables"]}
        for name in catalog.server_names()
    }
    assert "AAR_FORUM_POSTS_PER_MINUTE" in variables["forum"] and "AAR_PGR_SEEDS" not in variables["forum"]
    assert {"AAR_PGR_SEEDS", "AAR_W2S_CACHE_DIR", "AAR_SANDBOX_LIMITS"} <= variables["pgr"]
    assert not any(variable.startswith("AAR_FORUM_") for variable in variables["storage"])


def test_the_mcpb_manifests_are_valid_and_only_for_the_portable_servers() -> None:
    schema = json.loads((SCHEMAS / "mcpb-manifest-v0.3.schema.json").read_text())
    for name in catalog.server_names():
        path = manifest.manifest_path(name, manifest.DESKTOP_FILE)
        assert path.exists() == (name in ("forum", "storage")), name
        if path.exists():
            desktop = json.loads(path.read_text())
            jsonschema.validate(desktop, schema)
            offered = {tool["name"] for tool in manifest.load(name)["tools"]}
            assert {tool["name"] for tool in desktop["tools"]} == offered


def test_the_pgr_lock_holds_its_resources_templates_and_prompt() -> None:
    offered = manifest.load("pgr")
    assert {item["uri"] for item in offered["resources"]} == {"w2s://background", "w2s://method-api"}
    assert [item["uriTemplate"] for item in offered["resourceTemplates"]] == ["w2s://tasks/{name}"]
    assert [item["name"] for item in offered["prompts"]] == ["research_brief"]


def test_every_tool_declares_schemas_a_title_and_every_annotation() -> None:
    for name in catalog.server_names():
        for tool in manifest.load(name)["tools"]:
            where = f"{name}.{tool['name']}"
            assert tool["description"] and tool["inputSchema"]["type"] == "object", where
            assert tool["outputSchema"]["type"] == "object", f"{where} has no structured output"
            assert tool.get("title"), f"{where} has no title"
            hints = {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
            assert hints <= tool["annotations"].keys(), where


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
        assert path.read_text() == manifest.reference(name), f"run `aar manifest docs` for {name}"
        for tool in manifest.load(name)["tools"]:
            assert f"## `{tool['name']}`" in path.read_text()


def test_desktop_config_runs_this_aar_with_every_non_default_setting(tmp_path: Path) -> None:
    """Not the first `aar` on PATH, and settings from the shell and .env travel into the blocks that read them."""
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
        blocks = json.loads(printed.stdout)["mcpServers"]
        for block in blocks.values():
            assert block["command"] != str(impostor) and Path(block["command"]).is_absolute()
            assert block["command"] == (launcher[0] if launcher == [AAR] else sys.executable)
            assert "AAR_PORT" not in block["env"]  # defaults stay out
        pgr = blocks["pgr"]["env"]
        assert pgr["AAR_PGR_TASKS_DIR"] == str(tmp_path / "my-tasks")
        assert json.loads(pgr["AAR_SANDBOX_LIMITS"]) == {"memory_mib": 2048}
        assert pgr["AAR_PGR_SEEDS"] == "1" and pgr["AAR_W2S_CACHE_DIR"] == str(W2S_CACHE)
        assert json.loads(blocks["sandbox"]["env"]["AAR_SANDBOX_LIMITS"]) == {"memory_mib": 2048}
        # each server gets the settings its manifest declares, and no other server's
        assert not any(variable.startswith(("AAR_PGR_", "AAR_SANDBOX_")) for variable in blocks["forum"]["env"])
