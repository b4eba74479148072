"""`aar run` as a person runs it: a real process that launches its servers, is killed, resumed, interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.client.support import events, stop_reason, write_manifest
from tests.support import AAR

AGENTS = ["alpha", "beta", "gamma"]


def offline_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC_")}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition on files another process writes (there is no event to await), bounded."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if it is gone or a zombie: with
    its pid, this names one process even where pids are reused (32,768 of them turn over fast while
    the suite runs)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def alive(pid: int, since: int | None) -> bool:
    """Whether the process that had `pid` and started at `since` (`started`) still runs."""
    return since is not None and started(pid) == since


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path, str]:
    """Start `aar run`; the run directory and the backend it announces on its first two lines."""
    process = subprocess.Popen(
        [AAR, "run", *args, "--runs-dir", str(tmp_path / "runs"), "--no-live"],
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "client.log").open("ab"),
        text=True,
    )
    assert process.stdout is not None
    first, second = process.stdout.readline(), process.stdout.readline()
    assert first.startswith("run directory: "), first
    return process, Path(first.removeprefix("run directory: ").strip()), second.strip()


def tool_results(run_dir: Path, agent: str) -> int:
    return len(events(run_dir, agent, "tool_result"))


def server_pids(run_dir: Path) -> list[int]:
    """The pids of the servers the run's latest session launched (none until they are up)."""
    if not (run_dir / "run.json").exists():
        return []
    sessions = json.loads((run_dir / "run.json").read_text()).get("sessions") or [{}]
    return list(sessions[-1].get("servers", {}).get("pids", {}).values())


def test_without_an_api_key_the_run_is_scripted_and_says_so_in_one_line(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, agents=["alpha"], agent_budget={"turns": 2})
    process, run_dir, backend = start(tmp_path, str(manifest))
    out, _ = process.communicate(timeout=180)
    assert process.returncode == 0
    assert backend == "backend: the built-in scripted researcher, offline (no ANTHROPIC_API_KEY is set)"
    assert "AAR Lab run summary" in out and f"run directory: {run_dir}" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "scripted" and summary["team"]["turns"] == 2
    assert (run_dir / "summary.txt").read_text() in out


def test_a_run_killed_with_sigkill_resumes_every_agent_where_it_stopped(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, agents=AGENTS, agent_budget={"turns": 14})
    process, run_dir, _ = start(tmp_path, str(manifest))
    wait_for(lambda: len(server_pids(run_dir)) == 3, 120, "the servers")
    servers = {pid: started(pid) for pid in server_pids(run_dir)}
    wait_for(lambda: all(tool_results(run_dir, agent) >= 5 for agent in AGENTS), 120, "some work")
    process.kill()
    process.wait(10)
    gone = lambda: not any(alive(pid, since) for pid, since in servers.items())  # noqa: E731
    wait_for(gone, 30, "the launched servers to die with their client")
    before = {agent: tool_results(run_dir, agent) for agent in AGENTS}
    assert all(count < 14 for count in before.values())

    resumed = subprocess.run(
        [AAR, "run", "--resume", str(run_dir), "--no-live"],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.startswith(f"run directory: {run_dir}\n")
    for agent in AGENTS:
        assert len(events(run_dir, agent, "session")) == 2
        assert stop_reason(run_dir, agent) == "agent budget: turns (14 of 14)"
        turns = [e for e in events(run_dir, agent, "model_call") if e["purpose"] == "turn"]
        assert len(turns) == 14  # the budget counts both sessions
        calls = events(run_dir, agent, "tool_call")
        claims = [c for c in calls if c["name"] == "forum__post" and c["input"]["kind"] == "claim"]
        assert len(claims) == 1  # the resumed researcher knew it had claimed
        cycles = [
            c["input"]["content"].split("(cycle ")[1].split(")")[0] for c in calls if c["name"] == "sandbox__write_file"
        ]
        assert cycles == sorted(cycles, key=int) and len(set(cycles)) == len(cycles)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["turns"] for row in summary["agents"]] == [14, 14, 14]


def test_ctrl_c_stops_the_run_cleanly_with_everything_saved(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, agents=AGENTS, agent_budget={"turns": 500})
    process, run_dir, _ = start(tmp_path, str(manifest))
    wait_for(lambda: all(tool_results(run_dir, agent) >= 3 for agent in AGENTS), 120, "some work")
    servers = {pid: started(pid) for pid in server_pids(run_dir)}
    assert servers
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"continue with: aar run --resume {run_dir}" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True
    for agent in AGENTS:
        assert stop_reason(run_dir, agent) == "interrupted"
        last = events(run_dir, agent, "message")[-1]
        assert last["role"] == "user"  # every tool call has its result: the conversation can go on
    assert not any(alive(pid, since) for pid, since in servers.items())
