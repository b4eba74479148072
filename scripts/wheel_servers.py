"""Start each named server from this installation's console script (`aar-NAME`, over stdio) and check that
it offers what its shipped manifest says; run by scripts/wheel_check.sh inside a venv holding only the wheel."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from servers.kit import manifest

SHIPPED = {
    "pgr": ["servers/pgr/background.md", "servers/pgr/tasks/negation/task.toml"],
    "forum": ["client/console/templates/base.html", "client/console/static/console.css", "manifests/runs/nine.toml"],
}
"""Data files a server (or the console beside it) reads at run time, relative to site-packages."""


async def check(name: str, data_dir: Path) -> None:
    if name in ("forum", "storage"):
        assert importlib.util.find_spec("torch") is None, "installing the forum and storage servers pulled torch"
    installed = Path(manifest.__file__).parents[2]
    assert not (installed / ".git").exists() and "site-packages" in str(installed), f"not the wheel: {installed}"
    for file in SHIPPED.get(name, []):
        assert (installed / file).is_file(), f"the wheel lacks {file}"
    script = Path(sys.executable).with_name(f"aar-{name}")
    params = StdioServerParameters(command=str(script), env={"AAR_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"})
    async with Client(params) as client:
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        declared = manifest.load(name)
        assert tools == sorted(tool["name"] for tool in declared["tools"]), f"{name}: {tools}"
        if name == "sandbox":  # the installed packages hold the task packs: the sandbox's Python must not see them
            probe = f"python3 -c 'import mcp' && test ! -e {installed / 'servers'} && echo isolated"
            ran = await client.call_tool("exec", {"command": probe})
            assert not ran.is_error and (ran.structured_content or {}).get("stdout", "").strip() == "isolated", ran
        if declared["resources"]:
            first = declared["resources"][0]["uri"]
            content = await client.read_resource(first)
            assert content.contents, f"{name}: {first} is empty"
    print(f"{name}: {len(tools)} tools from {script}", file=sys.stderr)


async def main(names: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="aar-wheel-data-") as data:
        for name in names:
            await check(name, Path(data))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
