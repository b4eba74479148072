"""Ways for tests to reach a server: in memory, through a stdio subprocess, over HTTP with tokens."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from servers import catalog
from servers.kit.settings import Settings
from servers.w2s.tasks import default_tasks_root

AAR = str(Path(sys.executable).with_name("aar"))
W2S_CACHE = Path(tempfile.gettempdir()) / "aar-test-w2s-cache"
"""Strong-model features and baselines, shared by every test server (keyed by data and config)."""
SECRET_TASKS = Path(tempfile.gettempdir()) / "aar-test-secret-tasks-v3"
"""The secret transfer tasks of every test (derived once with a fixed choice), so their cache is shared."""
SECRET_DRAW = 2
"""The fixed choice: a draw the server's own check accepts (teachers 0.68-0.74 of test accuracy,
ceilings 0.09-0.13 ahead on each of seeds 0-2). Draw 0's negation teacher is near chance (0.55),
and one-seed whole runs with it saw honest submissions flagged ignores-teacher."""
TEST_SETTINGS = {
    "AAR_W2S_CACHE_DIR": str(W2S_CACHE),
    "AAR_PGR_SEEDS": "1",
    "AAR_PGR_SECRET_TASKS_DIR": str(SECRET_TASKS),
}
"""One seed per task keeps test submissions short; the official five are tested on their own."""


def shipped_tasks(folder: Path, *names: str) -> Path:
    """`folder` holding only the named shipped task packs (symlinks), for AAR_PGR_TASKS_DIR: a test of the
    queue or the scorer needs real submissions, not every task's runs."""
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).symlink_to(default_tasks_root() / name)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, **TEST_SETTINGS, "AAR_DATA_DIR": str(data_dir)}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    overrides = {"pgr_secret_tasks_dir": SECRET_TASKS, "w2s_cache_dir": W2S_CACHE, "pgr_seeds": 1, **overrides}
    return Settings(data_dir=data_dir, **overrides)  # type: ignore[arg-type]


async def pgr_ready(client: Client, timeout: float = 900) -> dict[str, Any]:
    """task_info once the PGR server has prepared its data (it answers at once while it prepares)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await client.call_tool("task_info", {})
        assert not info.is_error, info.content
        if info.structured_content["ready"]:
            ready: dict[str, Any] = info.structured_content
            return ready
        assert time.monotonic() < deadline, f"the PGR server did not get ready: {info.structured_content}"
        await asyncio.sleep(0.5)


def create_token(data_dir: Path, agent: str) -> str:
    out = subprocess.run(
        [AAR, "tokens", "create", agent], env=server_env(data_dir), check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class HttpServer:
    """`aar serve all --http` (or one server, `serve`) as a real subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, *, serve: str = "all", **settings: str) -> None:
        self.data_dir = data_dir
        self.serve = serve
        self.settings = settings
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self._tokens: dict[str, str] = {}

    def start(self) -> HttpServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [AAR, "serve", self.serve, "--http", "--port", str(self.port)],
                env={**server_env(self.data_dir), **self.settings},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 120  # a bound on a hang: a loaded 2-core machine starts slowly
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx2.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            time.sleep(0.1)
        self.kill()  # a server left running would outlive the test
        raise TimeoutError(f"server did not answer /healthz within 120 s: {self.log()}")

    def log(self) -> str:
        """What the server wrote to stderr."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown handler runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def url(self, server: str) -> str:
        return f"http://127.0.0.1:{self.port}/{server}/mcp"

    def token(self, agent: str) -> str:
        if agent not in self._tokens:
            self._tokens[agent] = create_token(self.data_dir, agent)
        return self._tokens[agent]

    @contextlib.asynccontextmanager
    async def client(self, server: str, agent: str | None = None, *, token: str | None = None) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token or self.token(agent or 'alice')}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(self.url(server), http_client=http)) as client,
        ):
            yield client


@contextlib.contextmanager
def running_http_server(data_dir: Path) -> Iterator[HttpServer]:
    server = HttpServer(data_dir).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def memory_client(
    server: str, data_dir: Path, agent: str = "alice", **overrides: object
) -> AsyncIterator[Client]:
    """An in-memory client of `server` as `agent`, with settings `overrides` (e.g. a lower limit)."""
    async with Client(catalog.factory(server)(make_settings(data_dir, **overrides), local_agent=agent)) as client:
        yield client


@contextlib.asynccontextmanager
async def stdio_client(server: str, data_dir: Path, agent: str = "alice") -> AsyncIterator[Client]:
    params = StdioServerParameters(command=AAR, args=["serve", server, "--agent", agent], env=server_env(data_dir))
    async with Client(params) as client:
        yield client


def fingerprint(server: str, data_dir: Path) -> str:
    """Everything a server has stored, as text: equal before and after means nothing changed."""
    if server == "forum":
        path = data_dir / "forum.sqlite"
        if not path.exists():
            return ""
        with contextlib.closing(sqlite3.connect(path)) as connection:
            return "\n".join(connection.iterdump())
    if server == "sandbox":
        workspaces = data_dir / "sandbox" / "workspaces"
        files = sorted(
            f"{path.relative_to(workspaces)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
            for path in workspaces.rglob("*")
            if path.is_file()
        )
        jobs = data_dir / "sandbox" / "jobs.sqlite"
        with contextlib.closing(sqlite3.connect(jobs)) as connection:
            records = [row[0] for row in connection.execute("SELECT id FROM jobs ORDER BY seq")]
        return "\n".join([*files, *records, fingerprint("storage", data_dir)])
    if server == "pgr":
        path = data_dir / "pgr.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            submissions = connection.execute("SELECT id FROM submissions ORDER BY seq").fetchall()
            evaluations = connection.execute("SELECT id, kind FROM evaluations ORDER BY id").fetchall()
        return f"{submissions} {evaluations}"
    if server == "storage":
        repo = data_dir / "storage.git"
        if not repo.exists():
            return ""
        refs = subprocess.run(
            ["git", "--git-dir", str(repo), "for-each-ref"], capture_output=True, text=True, check=True
        )
        return refs.stdout
    raise KeyError(server)


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def call(client: Client, tool: str, arguments: dict[str, object] | None = None) -> Any:
    """The structured result of a tool call that must succeed."""
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result.content
    return result.structured_content
