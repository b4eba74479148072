"""End to end: the default team of nine scripted researchers over real servers on loopback.

The servers are launched as `aar serve all --http`, each agent with its own bearer token; the
scripted researchers go through the real anthropic SDK to the local Messages API. Every kind of
shared work must happen and be in the run record: claims, snapshots, runs of real methods,
validation scores, PGR submissions with official scores, result posts citing both.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path

import pytest

from client.run_manifest import PROJECT_ROOT
from client.team import RunRequest, run_team
from tests.client.support import events
from tests.support import TEST_SETTINGS, shipped_tasks

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not (PROJECT_ROOT / "servers" / "pgr" / "server.py").exists(),
        reason="the PGR scoring server (servers/pgr/server.py) has not landed yet",
    ),
]

PUBLIC = "wordnet-food-substance"


async def test_nine_scripted_researchers_claim_snapshot_submit_and_post_over_real_servers(tmp_path: Path) -> None:
    result = await run_team(
        RunRequest(
            manifest="nine",
            runs_root=tmp_path / "runs",
            # one official score, of one seed per task, on one public task beside the secret ones, from
            # the tests' shared testbed cache: the same scoring as five seeds, every task and three
            # submissions, minutes sooner
            overrides={
                "budget.deadline": "120s",
                "budget.finish": "5m",
                "budget.team.pgr_submissions": 1,
                "servers.env": {
                    **TEST_SETTINGS,
                    "AAR_PGR_TASKS_DIR": str(shipped_tasks(tmp_path / "tasks", PUBLIC)),
                },
            },
            environ={},
            announce=lambda line: None,
        )
    )
    run_dir = result.run_dir.path
    summary = result.summary
    agents = [row["agent"] for row in summary["agents"]]
    assert len(agents) == 9 and summary["backend"] == "scripted"
    for agent in agents:
        names = [e["name"] for e in events(run_dir, agent, "tool_result") if not e["is_error"]]
        for tool in ("forum__feed", "pgr__task_info", "forum__post", "sandbox__write_file", "sandbox__exec"):
            assert tool in names, f"{agent} never used {tool}"
        assert "crashed" not in (summary["agents"][agents.index(agent)]["stop_reason"] or "")
    everyone = [e for agent in agents for e in events(run_dir, agent, "tool_result") if not e["is_error"]]
    assert sum(e["name"] == "pgr__evaluate_predictions" for e in everyone) >= 9
    assert sum(e["name"] == "sandbox__save_snapshot" for e in everyone) >= 9
    assert summary["team"]["submissions"] == 1  # the team's submission budget holds
    refused = [e for agent in agents for e in events(run_dir, agent, "tool_result") if e["refused"]]
    assert all("PGR submission budget is spent" in e["refused"] for e in refused)
    assert summary["team"]["best_validation_pgr"] is not None
    assert summary["team"]["best_pgr"] is not None, "no submission got its official score"
    tasks = summary["team"]["best_pgr_tasks"]
    assert any(name.startswith("secret") for name in tasks) and PUBLIC in tasks, tasks
    assert summary["team"]["best_pgr_public"] == tasks[PUBLIC]  # the one public task's, beside the secret ones

    with contextlib.closing(sqlite3.connect(run_dir / "servers" / "forum.sqlite")) as forum:
        claims = forum.execute("SELECT COUNT(DISTINCT author) FROM posts WHERE kind = 'claim'").fetchone()[0]
        cited = forum.execute(
            "SELECT COUNT(*) FROM posts WHERE kind = 'result' AND snapshot IS NOT NULL AND submission IS NOT NULL"
        ).fetchone()[0]
        with_snapshot = forum.execute("SELECT COUNT(*) FROM posts WHERE snapshot IS NOT NULL").fetchone()[0]
    assert claims == 9 and cited >= 1 and with_snapshot >= 9
    refs = subprocess.run(
        ["git", "--git-dir", str(run_dir / "servers" / "storage.git"), "for-each-ref", "--format=%(refname)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len([ref for ref in refs if ref.startswith("refs/heads/")]) == 9  # one storage branch per agent
    assert (run_dir / "summary.json").exists() and "best PGR" in (run_dir / "summary.txt").read_text()
