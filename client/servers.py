"""The servers a run uses: launched for it (as their manifests say, data under the run directory) or running ones.

Each launched server gets a free loopback port, and each agent one bearer token; each server is asked
to die with the client (PR_SET_PDEATHSIG), so even a `kill -9` of the client leaves no server
holding the run's data, and a resumed run starts fresh ones on the same data.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2

from client.run_manifest import RunManifest
from servers.kit import manifest as server_manifests
from servers.kit.identity import TokenStore
from servers.kit.settings import Settings, get_settings

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


class _ServerProcess:
    """One server as its manifest launches it over streamable HTTP, on its own free loopback port."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.port = _free_port()
        self.command = [*command, "--host", "127.0.0.1", "--port", str(self.port)]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{server_manifests.http_path(self.name)}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LaunchedServers:
    """Each server the run uses, started as its manifest says (manifests/servers/NAME/server.json), with
    the run's data directory."""

    def __init__(self, data_dir: Path, log_path: Path, *, env: dict[str, str], unsafe_no_isolation: bool) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        # the testbed cache is keyed by content, so every run shares the user's (minutes saved per run)
        shared = {"AAR_W2S_CACHE_DIR": str(get_settings().cache_dir)}
        self._env = {**os.environ, **shared, **env, "AAR_DATA_DIR": str(data_dir)}
        self._unsafe = unsafe_no_isolation
        self._servers: list[_ServerProcess] = []

    @property
    def pids(self) -> dict[str, int]:
        return {server.name: server.process.pid for server in self._servers if server.process is not None}

    async def start(self, names: list[str]) -> dict[str, str]:
        """Start the servers in `names` and wait until each answers; the URL of each."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                command = server_manifests.launch_command(name, "http")
            except FileNotFoundError as error:
                self.stop()
                raise ServerStartError(f"this installation has no manifest for server {name!r} ({error})") from None
            self._servers.append(_ServerProcess(name, [*command, *(["--unsafe-no-isolation"] if self._unsafe else [])]))
        with self.log_path.open("ab") as log:
            for server in self._servers:
                # Starting a child is quick and happens once; prctl(PDEATHSIG) in the child is async-signal-safe.
                server.process = subprocess.Popen(  # noqa: ASYNC220
                    server.command,
                    env=self._env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509
                )
        for server in self._servers:
            await self._wait_healthy(server)
        return {server.name: server.url for server in self._servers}

    async def _wait_healthy(self, server: _ServerProcess) -> None:
        """Poll /healthz (another process: there is no event to await) until it answers or the process exits."""
        assert server.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx2.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if server.process.poll() is not None:
                    self.stop()
                    raise ServerStartError(
                        f"the {server.name} server exited at start; the log ({self.log_path}):\n{self._log_tail()}"
                    )
                try:
                    response = await http.get(f"http://127.0.0.1:{server.port}/healthz")
                    if response.status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.2)
        self.stop()
        raise ServerStartError(
            f"the {server.name} server did not answer within {START_TIMEOUT_S:g} s; see {self.log_path}"
        )

    def _log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def create_tokens(self, agents: list[str]) -> dict[str, str]:
        """One fresh token per agent (an agent's earlier token is revoked)."""
        store = await TokenStore.open(Settings(data_dir=self.data_dir).identity_db)
        try:
            return {agent: await store.create(agent) for agent in agents}
        finally:
            await store.close()

    def stop(self) -> None:
        for server in self._servers:
            server.stop()


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
