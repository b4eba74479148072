"""`aar run` of three scripted researchers with AAR_EXECUTOR=ray: the servers on this machine (the head),
each agent's sandbox on a worker node of the cluster, the run's records as in a local run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.client.support import events, write_manifest
from tests.ray.support import LocalCluster
from tests.support import AAR

pytestmark = pytest.mark.timeout(600)

AGENTS = ["alpha", "beta", "gamma"]
TOOLS = ["forum__*", "storage__*", "sandbox__*"]


def test_three_scripted_researchers_run_end_to_end_with_their_sandboxes_on_the_cluster(
    ray_cluster: LocalCluster, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path, agents=AGENTS, tools=TOOLS, agent_budget={"turns": 8})
    nodes = tmp_path / "nodes"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}
    env |= {"AAR_EXECUTOR": "ray", "AAR_RAY_ADDRESS": ray_cluster.address, "AAR_RAY_NODE_DIR": str(nodes)}
    process = subprocess.run(
        [AAR, "run", str(manifest), "--runs-dir", str(tmp_path / "runs"), "--no-live"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    run_dir = Path(process.stdout.splitlines()[0].removeprefix("run directory: ").strip())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["team"]["turns"] == 8 * len(AGENTS), summary["team"]

    sandbox_calls = {
        agent: [e for e in events(run_dir, agent, "tool_result") if e["name"].startswith("sandbox__")]
        for agent in AGENTS
    }
    assert all(sandbox_calls.values()), "every researcher used its sandbox"
    assert not [e for calls in sandbox_calls.values() for e in calls if e["is_error"]], "and every call worked"
    homes = {path.parts[-2]: path.parts[-4] for path in nodes.glob("*/agents/*/sandbox")}
    assert set(homes) == set(AGENTS), homes
    assert set(homes.values()) <= ray_cluster.worker_ids()
    assert not (run_dir / "servers" / "sandbox" / "workspaces").exists(), "no workspace lives on the head"
