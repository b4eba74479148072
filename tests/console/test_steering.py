"""Steering: pause holds an agent between turns, resume and stop release it, the log replays on resume."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from client.record import is_terminal
from client.steering import ActionLog, TeamControls

pytestmark = pytest.mark.anyio


async def test_pause_holds_until_resume_and_every_action_is_logged_first(tmp_path: Path) -> None:
    controls = TeamControls(ActionLog(tmp_path / "steering.jsonl"), ["alpha"])
    control = controls.agents["alpha"]
    controls.act("alpha", "pause", "ada")
    released = anyio.Event()

    async def agent() -> None:
        await control.wait_while_paused()
        released.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(agent)
        await anyio.sleep(0.2)
        assert not released.is_set()
        controls.act("alpha", "resume", "grace")
        with anyio.fail_after(5):
            await released.wait()
    assert [(e["by"], e["action"]) for e in controls.log.entries()] == [("ada", "pause"), ("grace", "resume")]


async def test_stop_cuts_the_current_turn_and_releases_a_paused_agent(tmp_path: Path) -> None:
    controls = TeamControls(ActionLog(tmp_path / "steering.jsonl"), ["alpha"])
    control = controls.agents["alpha"]
    with anyio.fail_after(5), anyio.CancelScope() as scope:
        control.turn_scope = scope
        controls.act("alpha", "stop", "ada")
        await anyio.sleep(30)
    assert scope.cancelled_caught and control.stop_reason == "stopped by ada"
    assert is_terminal(control.stop_reason) and is_terminal("done") and not is_terminal("deadline")


async def test_a_resumed_run_replays_the_log(tmp_path: Path) -> None:
    log = ActionLog(tmp_path / "steering.jsonl")
    first = TeamControls(log, ["alpha", "beta", "gamma"])
    first.act("alpha", "pause", "ada")
    first.act("beta", "pause", "ada")
    first.act("beta", "resume", "ada")
    first.act("gamma", "stop", "grace")
    again = TeamControls(ActionLog(tmp_path / "steering.jsonl"), ["alpha", "beta", "gamma"])
    assert again.agents["alpha"].paused_by == "ada" and again.agents["beta"].paused_by is None
    assert again.agents["gamma"].stop_reason == "stopped by grace"


async def test_unknown_agents_and_actions_are_refused_without_a_log_line(tmp_path: Path) -> None:
    controls = TeamControls(ActionLog(tmp_path / "steering.jsonl"), ["alpha"])
    with pytest.raises(ValueError, match="no agent 'zed'"):
        controls.act("zed", "pause", "ada")
    with pytest.raises(ValueError, match="unknown action"):
        controls.act("alpha", "delete", "ada")
    assert controls.log.entries() == []
