"""Official submissions scored on a Ray cluster: runs on worker nodes, labels and scores on the server.

A worker node killed mid-submission costs retries, not results: every run is scored exactly once and
the scores are those of an undisturbed submission of the same (deterministic) method. A PGR server
restarted while runs are out keeps what finished and reruns only the rest.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import anyio
import pytest

from servers.pgr.isolated_runs import RunRequest
from servers.pgr.service import open_runs
from servers.pgr.submissions import FAILURES
from servers.sandbox.models import JobState
from servers.w2s.api import FINETUNE
from tests.pgr.support import pgr_client, save, submit, wait
from tests.ray.support import LocalCluster
from tests.support import make_settings

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(900)]

NEAREST_CENTROID = """\
def method(inp):
    # Deterministic: it ignores the secret seed, so the same bundle gives the same predictions.
    x, y = inp.strong.train_features, inp.weak_soft_labels[:, 1] > 0.5
    one, zero = x[y].mean(0), x[~y].mean(0)
    e = inp.strong.eval_features
    return ((e - one).norm(dim=1) < (e - zero).norm(dim=1)).long().tolist()
"""


def _evaluations(data_dir: Path, submission_id: str) -> list[tuple[str, int, str, float]]:
    with sqlite3.connect(data_dir / "pgr.sqlite") as connection:
        return connection.execute(
            "SELECT task, seed, control, accuracy FROM evaluations WHERE submission_id = ? ORDER BY task, seed",
            (submission_id,),
        ).fetchall()


def _runs_out_on(root: Path) -> list[Path]:
    """Official runs (not the mode declaration) under way in a node's folder."""
    return [path for path in (root / "pgr-runs").glob("*") if "-mode-" not in path.name]


async def test_a_node_killed_mid_submission_loses_nothing_and_every_run_is_scored_once(
    ray_cluster: LocalCluster, data_dir: Path, one_public_task: Path
) -> None:
    settings = {**ray_cluster.settings(data_dir), "pgr_tasks_dir": one_public_task}
    snapshot = await save(data_dir, NEAREST_CENTROID)
    async with pgr_client(data_dir, pgr_parallel_runs=4, **settings) as client:
        disturbed = (await submit(client, snapshot))["id"]
        victim = data_dir.parent / "nodes" / ray_cluster.node_id("node-a")
        with anyio.fail_after(300):
            while not _runs_out_on(victim):
                await anyio.sleep(0.1)
        ray_cluster.kill("node-a")
        first = await wait(client, disturbed, timeout=600)
        ray_cluster.add("node-a")
        undisturbed = (await submit(client, snapshot))["id"]
        second = await wait(client, undisturbed, timeout=600)

    assert first["state"] == second["state"] == "done", (first, second)
    assert first["progress"]["done"] == first["progress"]["total"]
    scored = _evaluations(data_dir, disturbed)
    assert len(scored) == first["progress"]["total"], "each run is scored once"
    assert len({(task, seed, control) for task, seed, control, _ in scored if control == "none"}) == len(
        [row for row in scored if row[2] == "none"]
    )
    real = [row for row in scored if row[2] == "none"]
    assert real == [row for row in _evaluations(data_dir, undisturbed) if row[2] == "none"]


async def test_a_restarted_server_reruns_only_the_runs_that_had_not_finished(
    ray_cluster: LocalCluster, data_dir: Path, one_public_task: Path
) -> None:
    settings = {**ray_cluster.settings(data_dir), "pgr_tasks_dir": one_public_task}
    snapshot = await save(data_dir, NEAREST_CENTROID)
    async with pgr_client(data_dir, pgr_parallel_runs=2, **settings) as client:
        submission_id = (await submit(client, snapshot))["id"]
        journal = data_dir / "pgr" / "runs" / submission_id / "done"
        with anyio.fail_after(300):
            while len(list(journal.glob("*.txt"))) < 2:
                await anyio.sleep(0.1)
    kept = len(list(journal.glob("*.txt")))
    async with pgr_client(data_dir, pgr_parallel_runs=2, **settings) as client:
        with anyio.fail_after(120):
            while True:
                progress = (await client.call_tool("submission", {"submission_id": submission_id})).structured_content
                if progress["state"] == "running" and progress["progress"]["total"]:
                    break
                await anyio.sleep(0.1)
        assert progress["progress"]["done"] >= kept, progress
        result = await wait(client, submission_id, timeout=600)
    assert result["state"] == "done", result
    assert len(_evaluations(data_dir, submission_id)) == result["progress"]["total"]
    assert not journal.parent.exists(), "the journal goes with the verdict"


async def test_a_run_asking_more_gpus_than_any_node_has_is_refused_at_once_and_named_a_setting(
    ray_cluster: LocalCluster, data_dir: Path
) -> None:
    settings = make_settings(data_dir, **ray_cluster.settings(data_dir))
    async with contextlib.AsyncExitStack() as stack:
        runs = await open_runs(settings, stack)
        request = RunRequest("sub_x-run", FINETUNE, {"m.py": b""}, "true", 600.0, "out.txt", gpus=4)
        with anyio.fail_after(30):  # not the scheduling grace of minutes: refused before Ray sees it
            outcome = await runs.execute(request)
    assert outcome.state is JobState.FAILED and outcome.unschedulable
    assert "has 4 GPUs (the most is 0)" in outcome.log_tail and "AAR_RAY_RUN_GPUS" in outcome.log_tail
    assert "operator" in FAILURES["capacity"] and "not your method" in FAILURES["capacity"].replace("\n", " ")
