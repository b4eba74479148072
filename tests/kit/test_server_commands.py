"""One script per server (`aar-forum`, ...), each the same as `aar serve NAME`, for users who install one server."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from servers import catalog
from tests.support import server_env

pytestmark = pytest.mark.anyio

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_server_has_its_own_console_script() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
    for name in catalog.server_names():
        module, function = scripts[f"aar-{name}"].split(":")
        assert callable(getattr(importlib.import_module(module), function)), scripts[f"aar-{name}"]


async def test_the_forum_script_serves_the_forum_over_stdio_as_the_given_agent(tmp_path: Path) -> None:
    script = "import sys; from servers.cli import forum; sys.exit(forum())"
    params = StdioServerParameters(
        command=sys.executable, args=["-c", script, "--agent", "ada"], env=server_env(tmp_path / "data")
    )
    async with Client(params) as client:
        posted = await client.call_tool("post", {"title": "from aar-forum", "body": "hello", "kind": "note"})
    assert not posted.is_error, posted.content
    assert posted.structured_content is not None and posted.structured_content["author"] == "ada"


def test_a_script_refuses_a_bad_agent_name_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from servers.cli import storage

    assert storage(["--agent", "Not A Name"]) == 2
    assert "invalid agent name 'Not A Name'" in capsys.readouterr().err
