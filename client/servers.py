"""The servers a run uses: launched for it (`aar serve all --http`, data under the run directory) or running ones.

A launched server set gets a free loopback port and one bearer token per agent; it is asked to
die with the client (PR_SET_PDEATHSIG), so even a `kill -9` of the client leaves no server
holding the run's data, and a resumed run starts a fresh one on the same data.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2

from client.run_manifest import RunManifest
from servers.kit.hosting import mcp_path
from servers.kit.identity import TokenStore
from servers.kit.settings import get_settings

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


class ServerStartError(RuntimeError):
    """The launched servers did not come up."""


@dataclass(frozen=True)
class ServerSet:
    urls: dict[str, str]
    """Server name -> streamable HTTP URL."""
    tokens: dict[str, str]
    """Agent -> bearer token."""


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the client dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LaunchedServers:
    """`aar serve all --http` as a child process with its own data directory."""

    def __init__(self, data_dir: Path, log_path: Path, *, env: dict[str, str], unsafe_no_isolation: bool) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = _free_port()
        # the testbed cache is keyed by content, so every run shares the user's (minutes saved per run)
        shared = {"AAR_W2S_CACHE_DIR": str(get_settings().cache_dir)}
        self._env = {**os.environ, **shared, **env, "AAR_DATA_DIR": str(data_dir)}
        self._unsafe = unsafe_no_isolation
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self, names: list[str]) -> dict[str, str]:
        """Start the servers and wait until they answer; the URL of each server in `names`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "client.cli",
            "serve",
            "all",
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self._unsafe:
            command.append("--unsafe-no-isolation")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, env=self._env, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=_die_with_parent
            )
        served = await self._wait_healthy()
        missing = [name for name in names if name not in served]
        if missing:
            self.stop()
            raise ServerStartError(
                f"this installation does not serve {', '.join(missing)} (it serves {', '.join(served)})"
            )
        return {name: self.base_url + mcp_path(name) for name in names}

    async def _wait_healthy(self) -> list[str]:
        """Poll /healthz (another process: there is no event to await) until it answers or the process exits."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx2.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise ServerStartError(
                        f"the servers exited at start; their log ({self.log_path}):\n{self._log_tail()}"
                    )
                try:
                    response = await http.get(self.base_url + "/healthz")
                    if response.status_code == 200:
                        return list(response.json()["servers"])
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.2)
        self.stop()
        raise ServerStartError(f"the servers did not answer within {START_TIMEOUT_S:g} s; see {self.log_path}")

    def _log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def create_tokens(self, agents: list[str]) -> dict[str, str]:
        """One fresh token per agent (an agent's earlier token is revoked)."""
        store = await TokenStore.open(self.data_dir / "identity.sqlite")
        try:
            return {agent: await store.create(agent) for agent in agents}
        finally:
            await store.close()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def connected_servers(manifest: RunManifest, environ: dict[str, str] | os._Environ[str]) -> ServerSet:
    """URLs and tokens of servers that are already running, from the manifest ('$VAR' tokens from the environment)."""
    tokens = {}
    for agent in manifest.agents:
        value = manifest.servers.tokens[agent.name]
        if value.startswith("$"):
            if value[1:] not in environ:
                raise ValueError(f"servers.tokens.{agent.name}: environment variable {value[1:]} is not set")
            value = environ[value[1:]]
        tokens[agent.name] = value
    return ServerSet(urls={name: manifest.servers.urls[name] for name in manifest.servers.use}, tokens=tokens)
