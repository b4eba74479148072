"""Every server package has one shape, and the vocabulary the servers share lives in the kit only.

Knowing one server means knowing all four: `server.py` (the tools), `store.py` (the one module that
owns the server's data), `models.py` (what the tools take and return); agent names, annotation
presets, timestamps and errors come from servers/kit.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from servers import catalog
from servers.kit.names import AGENT_NAME
from servers.kit.settings import Settings

pytestmark = pytest.mark.anyio

SERVERS_DIR = Path(__file__).resolve().parents[2] / "servers"
KIT_DIR = SERVERS_DIR / "kit"
SHAPE = ("server.py", "store.py", "models.py")
AGENT_PATTERN = AGENT_NAME.pattern.strip("^$")
SERVERS = catalog.server_names()


def _server_modules() -> list[Path]:
    """Every module of the server packages, the kit's excepted."""
    return [path for path in SERVERS_DIR.rglob("*.py") if KIT_DIR not in path.parents]


@pytest.mark.parametrize("name", SERVERS)
async def test_every_server_package_has_the_same_files_and_answers_in_iso_time(name: str, tmp_path: Path) -> None:
    package = SERVERS_DIR / name
    assert [file for file in SHAPE if not (package / file).is_file()] == [], f"servers/{name} lacks a file"
    server = catalog.factory(name)(Settings(data_dir=tmp_path), local_agent="shape")
    untimed = [
        f"{tool.name}: {field}"
        for tool in await server.list_tools()
        for field, schema in _properties(tool.output_schema or {})
        if field.endswith("_at") and "date-time" not in str(schema)
    ]
    assert untimed == [], "timestamps on the wire are servers.kit.timestamps.UtcTimestamp (UTC, ISO 8601)"


def _properties(schema: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every (name, schema) property of an output schema, its $defs' included."""
    found = list(schema.get("properties", {}).items())
    for definition in schema.get("$defs", {}).values():
        found += list(definition.get("properties", {}).items())
    return found


def test_no_server_module_defines_its_own_annotations_or_agent_name_pattern() -> None:
    offenders = []
    for path in _server_modules():
        offenders += _offenders(path.read_text(), str(path.relative_to(SERVERS_DIR.parent)))
    assert offenders == []


def test_the_check_finds_a_copy_of_the_vocabulary() -> None:
    source = (
        'A = ToolAnnotations(read_only_hint=True)\nNAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"\n'
        "state = ctx.request_context.lifespan_context\n"
    )
    assert sorted(line.split(" ", 1)[0] for line in _offenders(source, "x.py")) == ["x.py:1", "x.py:2", "x.py:3"]


def _offenders(source: str, where: str) -> list[str]:
    """Where a module builds its own annotations, spells the agent-name pattern or reads untyped lifespan state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "ToolAnnotations":
            found.append(f"{where}:{node.lineno} builds ToolAnnotations (use servers.kit.annotations)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and AGENT_PATTERN in node.value:
            found.append(f"{where}:{node.lineno} spells the agent-name pattern (use servers.kit.names)")
        elif isinstance(node, ast.Attribute) and node.attr == "lifespan_context":
            found.append(f"{where}:{node.lineno} reads lifespan_context (use servers.kit.hosting.lifespan_state)")
    return found
