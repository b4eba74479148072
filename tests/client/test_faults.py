"""The client against a misbehaving world: a fault-injecting Messages API, refused and slow tools,
budgets running out, a server that dies and comes back. Real servers over HTTP with tokens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import anyio
import pytest

from client.scripted.faults import Fault
from tests.client.support import events, run, stop_reason, write_manifest
from tests.support import HttpServer, running_http_server, wait_until

pytestmark = pytest.mark.anyio


async def test_rate_limits_overload_and_server_errors_are_retried_with_backoff_and_recorded(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(tmp_path, agents=["alpha", "beta"], server=server_set, agent_budget={"turns": 4})
    faults = [
        Fault(kind="rate_limit", requests=[1], agents=["alpha"], retry_after_s=0.2),
        Fault(kind="overloaded", requests=[2]),
        Fault(kind="server_error", requests=[3], agents=["alpha"]),
    ]
    result = await run(tmp_path, manifest, *faults)
    retries = events(result.run_dir, "alpha", "retry")
    assert [r["status"] for r in retries] == [429, 529, 500]
    assert 0.2 <= retries[0]["wait_s"] <= 0.25  # the server's retry-after is honoured, plus jitter
    assert [r["status"] for r in events(result.run_dir, "beta", "retry")] == [529]
    for agent in ("alpha", "beta"):
        assert stop_reason(result.run_dir, agent) == "agent budget: turns (4 of 4)"
        assert len(events(result.run_dir, agent, "tool_result")) == 4
    assert result.summary["agents"][0]["retries"] == 3


async def test_malformed_incomplete_and_hanging_answers_are_retried(tmp_path: Path, server_set: HttpServer) -> None:
    manifest = write_manifest(
        tmp_path, agents=["alpha"], server=server_set, agent_budget={"turns": 3}, extra="model_timeout = 1"
    )
    faults = [
        Fault(kind="malformed", requests=[1]),
        Fault(kind="incomplete", requests=[2]),
        Fault(kind="hang", requests=[4]),
    ]
    started = time.monotonic()
    result = await run(tmp_path, manifest, *faults)
    errors = [r["error"] for r in events(result.run_dir, "alpha", "retry")]
    assert len(errors) == 3
    assert "malformed" in errors[0].lower() or "decode" in errors[0].lower()
    assert "MalformedResponse" in errors[1]
    assert "Timeout" in errors[2]
    assert stop_reason(result.run_dir, "alpha") == "agent budget: turns (3 of 3)"
    assert time.monotonic() - started < 60


async def test_an_agent_whose_model_keeps_failing_waits_it_out_and_the_others_go_on(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(tmp_path, agents=["alpha", "beta"], server=server_set, agent_budget={"turns": 5})
    result = await run(tmp_path, manifest, Fault(kind="server_error", requests=list(range(1, 13)), agents=["beta"]))
    retries = events(result.run_dir, "beta", "retry")
    assert len(retries) == 12 and retries[-1]["error"] == "500 api_error: Internal server error"
    for agent in ("alpha", "beta"):
        assert stop_reason(result.run_dir, agent) == "agent budget: turns (5 of 5)"


async def test_a_tool_outside_the_allowlist_is_refused_recorded_and_never_reaches_a_server(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(tmp_path, agents=["alpha"], server=server_set, agent_budget={"turns": 4})
    faults = [
        Fault(kind="tool", requests=[2], tool="sandbox__exec", input={"command": "touch /workspace/pwned"}),
        Fault(kind="tool", requests=[3], tool="labels__read_all", input={}),
    ]
    result = await run(tmp_path, manifest, *faults)
    refused = [e for e in events(result.run_dir, "alpha", "tool_result") if e["refused"]]
    assert [e["name"] for e in refused] == ["sandbox__exec", "labels__read_all"]
    assert refused[0]["content"].startswith(
        "refused: 'sandbox__exec' is not one of your tools. Your tools: forum__feed"
    )
    assert "no server offers it" in refused[1]["content"]
    assert not (server_set.data_dir / "sandbox" / "workspaces" / "alpha" / "pwned").exists()
    assert result.summary["agents"][0]["refusals"] == 2
    assert stop_reason(result.run_dir, "alpha") == "agent budget: turns (4 of 4)"


async def test_a_tool_that_times_out_is_abandoned_and_the_agent_goes_on(tmp_path: Path, server_set: HttpServer) -> None:
    manifest = write_manifest(
        tmp_path,
        agents=["alpha"],
        server=server_set,
        tools=["forum__*", "sandbox__*"],
        agent_budget={"turns": 4},
        servers_extra='tool_timeout = "2s"',
    )
    result = await run(
        tmp_path, manifest, Fault(kind="tool", requests=[2], tool="sandbox__exec", input={"command": "sleep 30"})
    )
    results = events(result.run_dir, "alpha", "tool_result")
    timed_out = [e for e in results if e["name"] == "sandbox__exec"]
    assert len(timed_out) == 1 and timed_out[0]["is_error"]
    assert "did not answer within 2 s" in timed_out[0]["content"]
    assert 2 <= timed_out[0]["duration_s"] < 5
    assert [e["name"] for e in results if not e["is_error"]] == ["forum__feed", "forum__post", "sandbox__write_file"]


async def test_every_agent_stops_with_the_budget_that_ran_out_recorded(tmp_path: Path, server_set: HttpServer) -> None:
    manifest = write_manifest(
        tmp_path,
        agents=["turns", "tokens", "dollars", "team"],
        server=server_set,
        agent_budget={},
        team_budget={"turns": 30},
        budgets={"turns": {"turns": 3}, "tokens": {"tokens": 12_000}, "dollars": {"dollars": 0.05}},
    )
    result = await run(tmp_path, manifest)
    reasons = {agent: stop_reason(result.run_dir, agent) for agent in ("turns", "tokens", "dollars", "team")}
    assert reasons["turns"] == "agent budget: turns (3 of 3)"
    assert reasons["tokens"].startswith("agent budget: tokens (") and reasons["tokens"].endswith("of 12,000)")
    assert reasons["dollars"].startswith("agent budget: dollars ($0.0") and reasons["dollars"].endswith("of $0.05)")
    assert reasons["team"].startswith("team budget: turns (")
    assert result.summary["team"]["turns"] >= 30


async def test_the_deadline_ends_every_agent_even_in_the_middle_of_a_call(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(
        tmp_path,
        agents=["alpha", "beta"],
        server=server_set,
        tools=["forum__*", "sandbox__*"],
        agent_budget={},
        extra="",
        servers_extra="",
    )
    manifest.write_text(manifest.read_text().replace("[budget.agent]", '[budget]\ndeadline = "4s"\n[budget.agent]'))
    started = time.monotonic()
    result = await run(
        tmp_path, manifest, Fault(kind="tool", requests=[2], tool="sandbox__exec", input={"command": "sleep 60"})
    )
    assert time.monotonic() - started < 30
    for agent in ("alpha", "beta"):
        assert stop_reason(result.run_dir, agent) == "deadline"
        last = events(result.run_dir, agent, "message")[-1]
        assert last["role"] == "user" and last["content"][0]["content"].startswith("interrupted")


async def test_a_long_conversation_is_compacted_into_the_agents_own_summary(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(
        tmp_path,
        agents=["alpha"],
        server=server_set,
        agent_budget={"turns": 24},
        extra="[context]\ncompact_at_tokens = 5000\nkeep_recent_turns = 2\n",
    )
    result = await run(tmp_path, manifest)
    compactions = events(result.run_dir, "alpha", "compaction")
    assert len(compactions) >= 2
    assert "researcher-memory:" in compactions[0]["head"]["content"][0]["text"]
    assert all(c["kept"] == 4 for c in compactions)
    calls = list(events(result.run_dir, "alpha", "tool_call"))
    claims = [c for c in calls if c["name"] == "forum__post" and c["input"]["kind"] == "claim"]
    assert len(claims) == 1  # it knew it had claimed, from its own summary
    assert len(calls) == 24 and stop_reason(result.run_dir, "alpha") == "agent budget: turns (24 of 24)"
    purposes = [e["purpose"] for e in events(result.run_dir, "alpha", "model_call")]
    assert purposes.count("compaction") == len(compactions)


async def test_a_server_that_dies_mid_run_and_comes_back_is_reconnected(tmp_path: Path) -> None:
    with running_http_server(tmp_path / "data") as server:
        manifest = write_manifest(
            tmp_path,
            agents=["alpha", "beta"],
            server=server,
            agent_budget={"turns": 24},
            servers_extra='reconnect = "60s"',
        )
        async with anyio.create_task_group() as tasks:
            outcome: dict[str, object] = {}

            async def team() -> None:
                outcome["result"] = await run(tmp_path, manifest)

            tasks.start_soon(team)
            runs = tmp_path / "runs"
            await wait_until(lambda: any(runs.glob("*/agents/alpha.jsonl")), timeout=60)
            run_dir = next(runs.glob("*"))
            await wait_until(lambda: len(events(run_dir, "alpha", "tool_result")) >= 4, timeout=60)
            server.kill()
            await wait_until(
                lambda: (
                    sum(len(events(run_dir, a, "tool_call")) for a in ("alpha", "beta"))
                    > sum(len(events(run_dir, a, "tool_result")) for a in ("alpha", "beta"))
                ),
                timeout=30,
            )  # a call is now waiting for the dead server
            await asyncio.to_thread(server.start)
            restarted_at = time.time()
    results = [e for agent in ("alpha", "beta") for e in events(run_dir, agent, "tool_result")]
    for agent in ("alpha", "beta"):
        assert stop_reason(run_dir, agent) == "agent budget: turns (24 of 24)"
    assert len(results) == 48
    waited_out = [e for e in results if e["t"] - e["duration_s"] < restarted_at < e["t"] and not e["is_error"]]
    assert waited_out, "a call made while the server was down should have waited for it and succeeded"
    assert any(e["t"] > restarted_at + 0.5 and not e["is_error"] for e in results)
