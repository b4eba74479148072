"""Server manifests, generated from the live servers, in the formats the MCP ecosystem reads.

Each server has a folder manifests/servers/NAME/ holding:
- server.json: the MCP registry's format (name, description, the PyPI package with its stdio
  transport and environment variables, the streamable HTTP remote with its Authorization header),
  plus, under `_meta`, how this project launches it; the client and `aar desktop-config` read that.
- lock.json: everything the server offers (tools with titles, annotations and schemas; resources;
  resource templates; prompts), so that any change to what clients see shows up in review.
- manifest.json (forum and storage, the servers that run on macOS and Windows): an MCPB manifest
  for Claude Desktop.

The code is the source of truth: `aar manifest export` writes them, and the tests fail when a
committed file and its live server differ.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from mcp.server import MCPServer

from servers import catalog
from servers.kit.hosting import mcp_path
from servers.kit.settings import Settings

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "manifests" / "servers"
"""Beside the `servers` package both in a checkout and in an installed wheel (site-packages/manifests)."""
DOCS_DIR = MANIFEST_DIR.parents[1] / "docs" / "tools"

PACKAGE = "aar-lab"
NAMESPACE = "io.github.aar-lab"
REGISTRY_SCHEMA = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"
PUBLISHER_META = "io.modelcontextprotocol.registry/publisher-provided"
MCPB_VERSION = "0.3"
FILES = ("server.json", "lock.json")
DESKTOP_FILE = "manifest.json"
ENTRY_POINT = "client/cli.py"
"""What an MCPB bundle runs (this project's files at the bundle's root, its dependencies in lib/)."""


def manifest_path(name: str, file: str = "server.json") -> Path:
    return MANIFEST_DIR / name / file


# what the server offers: the lock


def _wire(items: list[Any]) -> list[dict[str, Any]]:
    """As listed on the wire: camelCase keys, no nulls."""
    return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]


async def live_tools(server: MCPServer[Any]) -> list[dict[str, Any]]:
    """The tools as the server lists them on the wire.

    Asked of the server object, so no lifespan runs (the PGR server's would start preparing
    its testbed); the contract tests compare the same list as clients receive it.
    """
    return _wire(await server.list_tools())


async def lock(name: str, server: MCPServer[Any]) -> dict[str, Any]:
    """Everything a live server offers its clients."""
    return {
        "name": name,
        "version": server.version,
        "instructions": server.instructions,
        "tools": await live_tools(server),
        "resources": _wire(await server.list_resources()),
        "resourceTemplates": _wire(await server.list_resource_templates()),
        "prompts": _wire(await server.list_prompts()),
    }


# how to get and start it: server.json


def _default(field: Any) -> str | None:
    if field.default_factory is not None or field.default is None:
        return None
    return env_value(field.default)


def environment_variables(name: str) -> list[dict[str, Any]]:
    """The AAR_* settings server `name` reads, as registry inputs (none is required or secret)."""
    variables = []
    for setting, field in Settings.model_fields.items():
        if not catalog.reads_setting(name, setting):
            continue
        entry: dict[str, Any] = {
            "name": f"AAR_{setting.upper()}",
            "description": field.description or setting.replace("_", " ").capitalize() + ".",
            "isRequired": False,
            "isSecret": False,
        }
        if field.annotation in (Path, Path | None):
            entry["format"] = "filepath"
        elif field.annotation in (int, float):
            entry["format"] = "number"
        elif field.annotation is bool:
            entry["format"] = "boolean"
        default = _default(field)
        if default is not None:
            entry["default"] = default
        variables.append(entry)
    return variables


def launch(name: str) -> dict[str, Any]:
    """How this project starts server `name`: one place, read by the client and by `aar desktop-config`."""
    return {
        "stdio": {"command": "aar", "args": ["serve", name]},
        "http": {"command": "aar", "args": ["serve", name, "--http"], "path": mcp_path(name)},
        "script": f"aar-{name}",
    }


def server_json(name: str, version: str) -> dict[str, Any]:
    """Server `name`'s entry in the MCP registry's server.json format."""
    defaults = Settings.model_fields  # the defaults, not this machine's settings
    return {
        "$schema": REGISTRY_SCHEMA,
        "name": f"{NAMESPACE}/{name}",
        "title": f"AAR Lab {name}",
        "description": catalog.SERVERS[name].summary,
        "version": version,
        "packages": [
            {
                "registryType": "pypi",
                "identifier": PACKAGE,
                "version": version,
                "runtimeHint": "uvx",
                "runtimeArguments": [
                    {"type": "named", "name": "--from", "value": f"{PACKAGE}=={version}"},
                    {"type": "positional", "value": f"aar-{name}"},
                ],
                "transport": {"type": "stdio"},
                "environmentVariables": environment_variables(name),
            }
        ],
        "remotes": [
            {
                "type": "streamable-http",
                "url": f"http://{defaults['host'].default}:{defaults['port'].default}{mcp_path(name)}",
                "headers": [
                    {
                        "name": "Authorization",
                        "description": "The agent's bearer token, from `aar tokens create NAME`.",
                        "value": "Bearer {token}",
                        "isRequired": True,
                        "isSecret": True,
                        "variables": {
                            "token": {"description": "An aar_... token.", "isRequired": True, "isSecret": True}
                        },
                    }
                ],
            }
        ],
        "_meta": {PUBLISHER_META: {"launch": launch(name)}},
    }


def desktop_manifest(name: str, declared: dict[str, Any], offered: dict[str, Any]) -> dict[str, Any]:
    """An MCPB (Desktop Extension) manifest for server `name`: Claude Desktop runs it with the user's Python."""
    user_config = {
        "data_dir": {
            "type": "directory",
            "title": "Data folder",
            "description": "Where the server keeps its data.",
            "required": True,
        }
    }
    stdio_args = declared["_meta"][PUBLISHER_META]["launch"]["stdio"]["args"]
    return {
        "manifest_version": MCPB_VERSION,
        "name": f"aar-lab-{name}",
        "display_name": declared["title"],
        "version": declared["version"],
        "description": declared["description"],
        "long_description": offered["instructions"],
        "author": {"name": "AAR Lab"},
        "license": "MIT",
        "keywords": ["mcp", "research", name],
        "server": {
            "type": "python",
            "entry_point": ENTRY_POINT,
            "mcp_config": {
                "command": "python",
                "args": [f"${{__dirname}}/{ENTRY_POINT}", *stdio_args],
                "env": {"PYTHONPATH": "${__dirname}/lib:${__dirname}", "AAR_DATA_DIR": "${user_config.data_dir}"},
            },
        },
        "tools": [{"name": tool["name"], "description": tool.get("description", "")} for tool in offered["tools"]],
        "user_config": user_config,
        "compatibility": {"platforms": ["darwin", "linux", "win32"], "runtimes": {"python": ">=3.11"}},
    }


async def describe(name: str, server: MCPServer[Any]) -> dict[str, dict[str, Any]]:
    """Every manifest file of a live server, by file name."""
    offered = await lock(name, server)
    declared = server_json(name, server.version)
    files = {"server.json": declared, "lock.json": offered}
    if catalog.SERVERS[name].desktop:
        files[DESKTOP_FILE] = desktop_manifest(name, declared, offered)
    return files


def load(name: str, file: str = "lock.json") -> dict[str, Any]:
    """A committed manifest file of server `name` (by default its lock: what it offers)."""
    path = manifest_path(name, file)
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: run `aar manifest export` in a checkout") from None


def write(name: str, files: dict[str, dict[str, Any]]) -> list[Path]:
    written = []
    for file, content in files.items():
        path = manifest_path(name, file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
        written.append(path)
    return written


def _differences(kind: str, declared: list[dict[str, Any]], live: list[dict[str, Any]], key: str) -> list[str]:
    problems = []
    declared_by_key = {item[key]: item for item in declared}
    live_by_key = {item[key]: item for item in live}
    for item in sorted(declared_by_key.keys() - live_by_key.keys()):
        problems.append(f"{kind} {item!r} is declared but the server does not offer it")
    for item in sorted(live_by_key.keys() - declared_by_key.keys()):
        problems.append(f"{kind} {item!r} is offered but not declared")
    for item in sorted(declared_by_key.keys() & live_by_key.keys()):
        before, after = declared_by_key[item], live_by_key[item]
        if before != after:
            fields = sorted(field for field in before.keys() | after.keys() if before.get(field) != after.get(field))
            problems.append(f"{kind} {item!r} differs in {', '.join(fields)}")
    return problems


def drift(name: str, live: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable differences between the committed manifests of server `name` and the live server."""
    problems = []
    for file in sorted(live.keys() | {path.name for path in (MANIFEST_DIR / name).glob("*.json")}):
        if file not in live:
            problems.append(f"{file} is committed but no longer generated")
        elif not manifest_path(name, file).exists():
            problems.append(f"{file} is missing")
        elif file == "lock.json":
            problems += lock_drift(load(name), live[file])
        elif load(name, file) != live[file]:
            problems.append(f"{file} differs")
    return problems


def lock_drift(declared: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """What differs between a committed lock and a live server, named item by item."""
    problems = [f"{key} differs" for key in ("name", "version", "instructions") if declared.get(key) != live.get(key)]
    for kind, field, key in (
        ("tool", "tools", "name"),
        ("resource", "resources", "uri"),
        ("resource template", "resourceTemplates", "uriTemplate"),
        ("prompt", "prompts", "name"),
    ):
        problems += _differences(kind, declared.get(field, []), live.get(field, []), key)
    return problems


# starting a server from its manifest


def own_command() -> list[str]:
    """The command line that starts this very `aar`: its script when run as one, else this interpreter
    with `-m client.cli` (never the first `aar` on PATH, which may be another installation)."""
    launched = Path(sys.argv[0])
    if launched.name == "aar" and launched.is_file():
        return [str(launched.resolve())]
    return [sys.executable, "-m", "client.cli"]


def env_value(value: Any) -> str:
    """A setting as its AAR_* variable holds it; paths absolute (Claude Desktop starts servers from /)."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, default=lambda item: str(Path(item).resolve()))
    return str(value)


def launch_env(name: str, settings: Settings) -> dict[str, str]:
    """The environment server `name` starts with: its manifest's variables that differ from their defaults
    (from the environment or .env), the data directory, and PYTHONPATH where this code is not installed."""
    declared = {variable["name"] for variable in load(name, "server.json")["packages"][0]["environmentVariables"]}
    env = {"AAR_DATA_DIR": env_value(settings.data_dir)}
    for setting, field in Settings.model_fields.items():
        variable = f"AAR_{setting.upper()}"
        value = getattr(settings, setting)
        if variable in declared and value != field.get_default(call_default_factory=True):
            env[variable] = env_value(value)
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(part).resolve()) for part in os.environ["PYTHONPATH"].split(os.pathsep) if part
        )
    return env


def launch_command(name: str, transport: str = "stdio") -> list[str]:
    """The command line that starts server `name` (transport 'stdio' or 'http'), from its manifest.

    The manifest names the `aar` command; it runs as this installation's own (see `own_command`)."""
    block = load(name, "server.json")["_meta"][PUBLISHER_META]["launch"][transport]
    if block["command"] != "aar":
        raise ValueError(f"manifests/servers/{name}/server.json: launch command {block['command']!r} is not `aar`")
    return [*own_command(), *block["args"]]


def http_path(name: str) -> str:
    path: str = load(name, "server.json")["_meta"][PUBLISHER_META]["launch"]["http"]["path"]
    return path


def client_configs(settings: Settings, agent: str) -> dict[str, dict[str, Any]]:
    """Claude Desktop and Claude Code configuration blocks for every server, built from the manifests."""
    stdio: dict[str, Any] = {}
    http: dict[str, Any] = {}
    for name in catalog.server_names():
        command, *args = launch_command(name)
        stdio[name] = {"command": command, "args": [*args, "--agent", agent], "env": launch_env(name, settings)}
        http[name] = {
            "type": "http",
            "url": f"http://{settings.host}:{settings.port}{http_path(name)}",
            "headers": {"Authorization": "Bearer ${AAR_TOKEN}"},
        }
    return {
        "desktop": {"mcpServers": stdio},
        "code": {"mcpServers": {name: {"type": "stdio", **entry} for name, entry in stdio.items()}},
        "code-http": {"mcpServers": http},
    }


def _schema_type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_schema_type(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " / ".join(repr(value) for value in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    return str(schema.get("type", "object"))


def reference(name: str) -> str:
    """A server's reference in Markdown, generated from its committed manifests."""
    offered = load(name)
    lines = [
        f"# `{name}` server: reference",
        "",
        f"Generated from `manifests/servers/{name}/` by `aar manifest docs`; do not edit.",
        "",
        offered["instructions"],
        "",
        f"Run: `aar serve {name}` or `aar-{name}` (stdio), or `aar serve {name} --http` (at `{http_path(name)}`).",
    ]
    for tool in offered["tools"]:
        hints = tool.get("annotations", {})
        flags = [label for key, label in (("readOnlyHint", "read-only"), ("destructiveHint", "destructive"),
                                          ("idempotentHint", "idempotent"), ("openWorldHint", "open world"))
                 if hints.get(key)]  # fmt: skip
        title = f" ({tool['title']})" if tool.get("title") else ""
        lines += ["", f"## `{tool['name']}`{title}", "", tool.get("description", ""), ""]
        lines += [f"Annotations: {', '.join(flags) or 'none'}.", "", "| argument | type | required | description |"]
        lines += ["|---|---|---|---|"]
        schema = tool["inputSchema"]
        required = set(schema.get("required", []))
        for argument, spec in schema.get("properties", {}).items():
            description = spec.get("description", "").replace("|", "\\|")
            lines.append(
                f"| `{argument}` | {_schema_type(spec)} | {'yes' if argument in required else 'no'} | {description} |"
            )
        returns = ", ".join(f"`{field}`" for field in tool.get("outputSchema", {}).get("properties", {}))
        lines += ["", f"Returns: {returns}."]
    extras = [
        *(f"- resource `{item['uri']}`: {item.get('description', '')}" for item in offered["resources"]),
        *(
            f"- resource template `{item['uriTemplate']}`: {item.get('description', '')}"
            for item in offered["resourceTemplates"]
        ),
        *(f"- prompt `{item['name']}`: {item.get('description', '')}" for item in offered["prompts"]),
    ]
    if extras:
        lines += ["", "## Resources and prompts", "", *extras]
    return "\n".join(lines) + "\n"
