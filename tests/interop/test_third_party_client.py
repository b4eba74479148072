"""The servers answer a third-party client (the Python MCP SDK 1.x, in its own venv) over stdio
and streamable HTTP, launched and reached exactly as `aar desktop-config` prints, on a cold data
directory.

The venv is built once per machine under the temp directory from the package index pip is
configured with; the test is skipped only when that index cannot be reached. All MCP traffic
stays on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import AAR, HttpServer, server_env

CLIENT_REQUIREMENT = "mcp<2"
CLIENT_VENV = Path(tempfile.gettempdir()) / f"aar-interop-mcp1-py{sys.version_info.major}{sys.version_info.minor}"
DRIVER = Path(__file__).with_name("mcp1_driver.py")
UNREACHABLE = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution", "Network is")

CALLS: dict[str, dict[str, Any] | None] = {
    "forum": {"tool": "post", "arguments": {"title": "interop", "body": "from mcp 1.x", "kind": "note"}},
    "storage": {"tool": "save", "arguments": {"files": {"m.py": "x = 1\n"}, "message": "from mcp 1.x"}},
    "sandbox": {"tool": "exec", "arguments": {"command": "echo sandboxed"}},
    "pgr": None,  # its tools wait for a warm testbed; listing them is enough here
}


def client_python() -> Path:
    """The venv's interpreter, building the venv on first use."""
    python = CLIENT_VENV / "bin" / "python"
    ready = CLIENT_VENV / ".ready"
    if ready.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(CLIENT_VENV)], check=True, capture_output=True)
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", CLIENT_REQUIREMENT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if installed.returncode != 0:
        if any(marker in installed.stderr for marker in UNREACHABLE):
            pytest.skip(f"the package index is unreachable, so {CLIENT_REQUIREMENT!r} cannot be installed")
        raise AssertionError(f"pip could not install {CLIENT_REQUIREMENT!r}:\n{installed.stderr}")
    ready.write_text(CLIENT_REQUIREMENT)
    return python


def printed_config(fmt: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([AAR, "desktop-config", "--format", fmt], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["mcpServers"]  # type: ignore[no-any-return]


def drive(plan: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    run = subprocess.run(
        [str(client_python()), str(DRIVER)],
        input=json.dumps(plan),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def check(answers: dict[str, Any], transport: str) -> None:
    for name, answer in answers.items():
        assert "failure" not in answer, f"{name} over {transport}: {answer['failure']}"
        assert answer["server"] == name and answer["tools"], answer
        call = answer.get("call")
        if call is not None:
            assert not call["is_error"], f"{name} over {transport}: {call['text']}"
    assert answers["forum"]["call"]["structured"]["author"] == "alice"
    assert answers["storage"]["call"]["structured"]["author"] == "alice"
    assert answers["sandbox"]["call"]["structured"]["stdout"] == "sandboxed\n"


def test_mcp_1x_client_over_stdio_from_the_printed_desktop_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"  # cold: nothing exists yet
    blocks = printed_config("desktop", server_env(data_dir))
    for block in blocks.values():
        block["args"] = [*block["args"][:-1], "alice"]  # the --agent the user would choose
    plan = [{"name": name, "block": blocks[name], "call": CALLS[name]} for name in ("forum", "storage", "sandbox")]
    check(drive(plan, {"PATH": "/usr/bin:/bin"}), "stdio")  # Claude Desktop's bare environment


def test_mcp_1x_client_over_http_from_the_printed_claude_code_config(data_dir: Path) -> None:
    server = HttpServer(data_dir).start()
    try:
        env = {**server_env(data_dir), "AAR_PORT": str(server.port)}
        blocks = printed_config("code-http", env)
        plan = [{"name": name, "block": block, "call": CALLS[name]} for name, block in blocks.items()]
        answers = drive(plan, {"PATH": "/usr/bin:/bin", "AAR_TOKEN": server.token("alice")})
        check(answers, "HTTP")
        assert {"task_info", "submit", "leaderboard"} <= set(answers["pgr"]["tools"])
        unauthenticated = drive(plan[:1], {"PATH": "/usr/bin:/bin", "AAR_TOKEN": "aar_wrong"})
        assert "401" in unauthenticated[plan[0]["name"]]["failure"]
    finally:
        server.stop()
