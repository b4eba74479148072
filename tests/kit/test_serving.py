"""`aar serve` as people run it: a server that cannot start says why and exits, Ctrl-C stops it,
and a request without a valid token is told the one thing to do."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from pathlib import Path

import httpx2
import pytest

from tests.support import AAR, HttpServer, server_env

pytestmark = pytest.mark.anyio

HANG_S = 60
"""Bound on waiting for a process that should exit on its own (a hang fails the test, not the suite)."""


def test_a_stdio_server_that_cannot_start_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    """Another PGR server holds the data directory: the second one must not hang with its store open."""
    data_dir = tmp_path / "data"
    lock_path = data_dir / "pgr" / "frozen" / "sandbox" / "service.lock"  # the first of its two sandboxes
    lock_path.parent.mkdir(parents=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running PGR server's sandbox holds it
        process = subprocess.Popen(
            [AAR, "serve", "pgr"],
            env=server_env(data_dir),
            stdin=subprocess.PIPE,  # left open, as an MCP client leaves it
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            _, stderr = process.communicate(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("`aar serve pgr` hung instead of exiting when it could not start")
    assert process.returncode not in (0, None)
    last_line = stderr.decode().strip().splitlines()[-1]
    assert last_line.startswith("error: the pgr server cannot start") and "already uses" in last_line, stderr


def test_ctrl_c_stops_the_http_servers_after_an_authenticated_request(data_dir: Path) -> None:
    server = HttpServer(data_dir).start()
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        headers = {"Authorization": f"Bearer {server.token('alice')}", "Accept": "application/json, text/event-stream"}
        response = httpx2.post(server.url("forum"), json=body, headers=headers, timeout=30)
        assert response.status_code != 401  # the verifier opened its token store
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGINT)
        try:
            server.process.wait(HANG_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`aar serve all --http` ignored Ctrl-C:\n{server.log()}")
    finally:
        server.kill()


def test_a_401_names_the_command_that_creates_a_token_and_advertises_no_missing_metadata(
    http_server: HttpServer,
) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer aar_not-a-real-token"}):
        response = httpx2.post(http_server.url("sandbox"), json=body, headers=headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert (
            "aar tokens create NAME" in challenge and "aar tokens create NAME" in response.json()["error_description"]
        )
        if "resource_metadata=" in challenge:
            url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
            assert httpx2.get(url).status_code == 200, f"{url} is advertised but does not exist"
