"""The sandbox under AAR_EXECUTOR=ray: the same tools and contract, each agent's workspace and commands on
a worker node under bubblewrap, nothing of the head or of Ray reachable from inside, and a failed node
reported, not hidden."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servers.cluster.node_sandbox import NodeSandboxSpec
from servers.cluster.sandbox_actors import NodeLostError, RaySandbox
from servers.sandbox.errors import CapacityError
from servers.sandbox.models import JobState
from servers.sandbox.server import sandbox_config
from tests.contract import test_contract
from tests.contract.test_contract import run_contract
from tests.ray.conftest import CANARY
from tests.ray.support import LocalCluster
from tests.support import fingerprint, make_settings, memory_client

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]


def _on_ray(cluster: LocalCluster, data_dir: Path, **overrides: object) -> dict[str, object]:
    return {**cluster.settings(data_dir), **overrides}


def _nodes(data_dir: Path) -> Path:
    return data_dir.parent / "nodes"


def _cluster_fingerprint(server: str, data_dir: Path) -> str:
    """The sandbox's stored state is on the nodes: every workspace file and job record there."""
    if server != "sandbox":
        return fingerprint(server, data_dir)
    lines = []
    for root in sorted(_nodes(data_dir).glob("*/agents/*/sandbox")):
        for path in sorted((root / "workspaces").rglob("*")):
            if path.is_file():
                lines.append(f"{path.relative_to(root)} {hashlib.sha256(path.read_bytes()).hexdigest()}")
        with contextlib.closing(sqlite3.connect(root / "jobs.sqlite")) as connection:
            lines += [row[0] for row in connection.execute("SELECT id FROM jobs ORDER BY seq")]
    return "\n".join([*lines, fingerprint("storage", data_dir)])


@pytest.fixture
def cluster_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_contract, "fingerprint", _cluster_fingerprint)


async def test_the_sandbox_contract_holds_on_the_cluster(
    ray_cluster: LocalCluster, data_dir: Path, cluster_fingerprint: None
) -> None:
    async with memory_client("sandbox", data_dir, "alice", **_on_ray(ray_cluster, data_dir)) as client:
        await run_contract(client, "sandbox", data_dir)
    workspaces = list(_nodes(data_dir).glob("*/agents/alice/sandbox/workspaces/alice/seed.txt"))
    assert len(workspaces) == 1 and workspaces[0].parts[-7] in ray_cluster.worker_ids()
    assert not (data_dir / "sandbox" / "workspaces").exists(), "nothing of the workspace lives on the head"


ESCAPE = r"""
import os, socket, sys
found = []
host, port = sys.argv[1].split(":")
try:
    socket.create_connection((host, int(port)), timeout=3).close()
    found.append("reached the GCS port")
except OSError as error:
    print("gcs:", error)
for path in sys.argv[2:]:
    if os.path.exists(path):
        found.append(f"sees {path}")
environment = dict(os.environ)
for pid in os.listdir("/proc"):  # every process this sandbox can see, its init included
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environment[f"pid{pid}"] = handle.read().decode(errors="replace")
        except OSError:
            pass  # unreadable is what isolation should give
if any("CANARY" in value or "CANARY" in key for key, value in environment.items()):
    found.append("a secret of the node's environment")
print("FOUND" if found else "NOTHING", found)
"""


async def test_a_sandbox_on_a_worker_node_reaches_neither_ray_nor_the_heads_files_nor_secrets(
    ray_cluster: LocalCluster, data_dir: Path
) -> None:
    head_files = [str(data_dir), str(data_dir / "pgr" / "secret.key"), "/tmp/ray", str(_nodes(data_dir))]  # noqa: S108 - Ray's own folder, checked unreachable
    async with memory_client("sandbox", data_dir, "mallory", **_on_ray(ray_cluster, data_dir)) as client:
        await client.call_tool("write_file", {"path": "escape.py", "content": ESCAPE})
        args = " ".join([ray_cluster.address, *head_files])
        result = await client.call_tool("exec", {"command": f"python escape.py {args}", "timeout_s": 60})
    output = result.structured_content
    assert output is not None and output["exit_code"] == 0, output
    assert "NOTHING" in output["stdout"], output["stdout"]
    assert CANARY.split("=")[1] not in json.dumps(output)
    assert _worker_environment(CANARY.split("=")[0]) == CANARY.split("=")[1], "the secret was there to steal"


def _worker_environment(name: str) -> str | None:
    """A variable as a Ray worker process on a worker node sees it."""
    import os

    import ray

    return ray.get(ray.remote(lambda: os.environ.get(name)).options(resources={"sandbox": 1}).remote())


@contextlib.asynccontextmanager
async def _service(cluster: LocalCluster, data_dir: Path, gpus: float = 0.0) -> AsyncIterator[RaySandbox]:
    """The sandbox server's cluster side, as one server process holds it (closed after, as a server is)."""
    settings = make_settings(data_dir, **_on_ray(cluster, data_dir))
    sandbox = await RaySandbox.open(NodeSandboxSpec(sandbox_config(settings), False), _nodes(data_dir), gpus=gpus)
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def test_a_job_asking_for_more_gpus_than_the_cluster_has_is_refused_at_once(
    ray_cluster: LocalCluster, data_dir: Path
) -> None:
    async with _service(ray_cluster, data_dir) as sandbox:
        with pytest.raises(CapacityError, match="asks for 2 GPUs but your sandbox holds 0"):
            await sandbox.start_job("carol", "train", "python train.py", gpus=2)
    async with _service(ray_cluster, data_dir, gpus=8) as greedy:
        with pytest.raises(CapacityError, match=r"no live cluster node .* has 8 GPUs"):
            await greedy.exec("dave", "nvidia-smi")
    async with memory_client(
        "sandbox", data_dir, "erin", **_on_ray(ray_cluster, data_dir, ray_sandbox_gpus=4)
    ) as client:
        result = await client.call_tool("exec", {"command": "true"})
    assert result.is_error and "AAR_RAY_SANDBOX_GPUS" in result.content[0].text  # type: ignore[union-attr]


async def test_a_killed_node_reports_its_jobs_lost_and_the_workspace_comes_back_from_a_snapshot(
    ray_cluster: LocalCluster, data_dir: Path
) -> None:
    async with _service(ray_cluster, data_dir) as sandbox:
        await sandbox.write_file("frank", "work.py", "print('hi')\n")
        saved = await sandbox.export_files("frank", ["work.py"])
        job = await sandbox.start_job("frank", "long", "sleep 600")
        victim = ray_cluster.name_of(sandbox.node_of("frank"))
        ray_cluster.kill(victim)
        try:
            with pytest.raises(NodeLostError, match="restore it with load_snapshot"):
                await sandbox.list_files("frank")
            info = await sandbox.job_status("frank", job)
            assert info.state is JobState.LOST and "failed" in (info.error or ""), info
            assert [j.state for j in await sandbox.list_jobs("frank")] == [JobState.LOST]
            await sandbox.import_files("frank", saved)
            assert sandbox.node_of("frank") != ray_cluster.id_before_kill(victim)
            result = await sandbox.exec("frank", "python work.py")
            assert result.stdout == "hi\n", result
        finally:
            ray_cluster.add(victim)
    async with _service(ray_cluster, data_dir) as restarted:  # the server again: the lost job is still reported
        assert [(j.id, j.state) for j in await restarted.list_jobs("frank")] == [(job, JobState.LOST)]
        assert (await restarted.job_status("frank", job)).state is JobState.LOST
        assert (await restarted.delete_job("frank", job)).state is JobState.LOST
        assert await restarted.list_jobs("frank") == []


async def test_a_node_that_fails_while_the_server_is_down_has_its_jobs_reported_lost(
    ray_cluster: LocalCluster, data_dir: Path
) -> None:
    async with _service(ray_cluster, data_dir) as before:
        job = await before.start_job("grace", "long", "sleep 600")
        victim = ray_cluster.name_of(before.node_of("grace"))
    # the server has stopped; its agents' actors and jobs live on until the node fails
    ray_cluster.kill(victim)
    try:
        async with _service(ray_cluster, data_dir) as after:
            jobs = await after.list_jobs("grace")  # a fresh sandbox on a live node, and the old job reported
            assert [(j.id, j.state) for j in jobs] == [(job, JobState.LOST)], jobs
            assert "failed" in (jobs[0].error or "") and after.node_of("grace") != ray_cluster.id_before_kill(victim)
            assert (await after.job_status("grace", job)).state is JobState.LOST
    finally:
        ray_cluster.add(victim)
