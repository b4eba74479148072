"""Server manifests (manifests/servers/NAME.json), generated from the live servers.

The code is the source of truth: `aar manifest export` writes what each server lists, and
the tests fail when a committed manifest and its live server differ in any tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp.server import MCPServer

from servers.kit.hosting import mcp_path

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "manifests" / "servers"


def manifest_path(name: str) -> Path:
    return MANIFEST_DIR / f"{name}.json"


async def live_tools(server: MCPServer[Any]) -> list[dict[str, Any]]:
    """The tools as the server lists them on the wire (camelCase keys, no nulls).

    Asked of the server object, so no lifespan runs (the PGR server's would start preparing
    its testbed); the contract tests compare the same list as clients receive it.
    """
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in await server.list_tools()]


async def describe(name: str, server: MCPServer[Any]) -> dict[str, Any]:
    """The manifest of a live server: identity, how to launch it, and every tool."""
    return {
        "name": name,
        "version": server.version,
        "description": server.instructions,
        "launch": {
            "stdio": {"command": "aar", "args": ["serve", name]},
            "http": {"command": "aar", "args": ["serve", name, "--http"], "path": mcp_path(name)},
        },
        "tools": await live_tools(server),
    }


def load(name: str) -> dict[str, Any]:
    return json.loads(manifest_path(name).read_text())  # type: ignore[no-any-return]


def write(manifest: dict[str, Any]) -> Path:
    path = manifest_path(manifest["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def drift(declared: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Human-readable differences between a committed manifest and its live server."""
    problems = []
    for key in ("name", "version", "description", "launch"):
        if declared.get(key) != live.get(key):
            problems.append(f"{key} differs")
    declared_tools = {tool["name"]: tool for tool in declared.get("tools", [])}
    live_tools_by_name = {tool["name"]: tool for tool in live["tools"]}
    for tool in sorted(declared_tools.keys() - live_tools_by_name.keys()):
        problems.append(f"tool {tool!r} is declared but the server does not offer it")
    for tool in sorted(live_tools_by_name.keys() - declared_tools.keys()):
        problems.append(f"tool {tool!r} is offered but not declared")
    for tool in sorted(declared_tools.keys() & live_tools_by_name.keys()):
        if declared_tools[tool] != live_tools_by_name[tool]:
            fields = sorted(
                key
                for key in declared_tools[tool].keys() | live_tools_by_name[tool].keys()
                if declared_tools[tool].get(key) != live_tools_by_name[tool].get(key)
            )
            problems.append(f"tool {tool!r} differs in {', '.join(fields)}")
    return problems


DOCS_DIR = MANIFEST_DIR.parents[1] / "docs" / "tools"


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


def reference(manifest: dict[str, Any]) -> str:
    """A server's tool reference in Markdown, generated from its manifest."""
    name = manifest["name"]
    lines = [
        f"# `{name}` server: tool reference",
        "",
        f"Generated from `manifests/servers/{name}.json` by `aar manifest docs`; do not edit.",
        "",
        manifest["description"],
        "",
        f"Run: `aar serve {name}` (stdio) or `aar serve {name} --http` (at `{manifest['launch']['http']['path']}`).",
    ]
    for tool in manifest["tools"]:
        hints = tool.get("annotations", {})
        flags = [label for key, label in (("readOnlyHint", "read-only"), ("destructiveHint", "destructive"),
                                          ("idempotentHint", "idempotent")) if hints.get(key)]  # fmt: skip
        lines += ["", f"## `{tool['name']}`", "", tool.get("description", ""), ""]
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
    return "\n".join(lines) + "\n"
