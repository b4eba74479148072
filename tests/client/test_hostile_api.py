"""The client (real anthropic SDK over HTTP, real MCP servers) against a hostile Messages API: every
failure the real API has on bad days, each run to its end and then resumed, and never an invalid
request sent (the fake checks each one as the API would)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from client.backends.anthropic import MessagesBackend
from client.compaction import SUMMARY_HEADER
from client.console.serve import ConsoleOptions
from client.costs import Usage, cost, known_price
from client.record import RunDir
from client.run_manifest import Retry
from client.team import RunRequest, RunResult, run_team
from tests.client.hostile_api import API_KEY, TRANSIENT, HostileApi, hostile_api
from tests.client.support import events, stop_reason, write_manifest
from tests.support import AAR, HttpServer

pytestmark = pytest.mark.anyio

TOOLS = ["forum__feed", "sandbox__write_file", "sandbox__read_file"]
MODEL = "claude-opus-4-6"


def manifest_for(tmp_path: Path, server: HttpServer, agents: list[str], turns: int, **options: Any) -> Path:
    return write_manifest(tmp_path, agents=agents, server=server, tools=TOOLS, agent_budget={"turns": turns}, **options)


async def hostile_run(
    url: str, tmp_path: Path, manifest: Path | None = None, *, resume: RunDir | None = None, **request: Any
) -> RunResult:
    environ = {"ANTHROPIC_API_KEY": request.pop("key", API_KEY), "ANTHROPIC_BASE_URL": url}
    return await run_team(
        RunRequest(
            manifest=manifest,
            resume=resume.path if resume else None,
            runs_root=tmp_path / "runs",
            environ=environ,
            announce=request.pop("announce", lambda line: None),
            **request,
        )
    )


def assert_valid_and_accounted(api: HostileApi, run_dir: RunDir, agents: list[str]) -> None:
    """No invalid request reached the API, and every answered call is recorded once at usage x price."""
    assert api.invalid == []
    price = known_price(MODEL)
    assert price is not None
    recorded = {}
    for agent in agents:
        for call in events(run_dir, agent, "model_call"):
            assert call["request_id"] not in recorded
            recorded[call["request_id"]] = call
            billed_agent, usage = api.billed[call["request_id"]]
            assert billed_agent == agent and call["usage"] == usage
            assert call["dollars"] == round(cost(Usage.from_api(usage), price), 6)
    assert set(recorded) == {rid for rid, (agent, _) in api.billed.items() if agent in agents}


def conversation_is_clean(run_dir: RunDir, agent: str) -> None:
    for message in events(run_dir, agent, "message"):
        assert message["content"], f"an empty {message['role']} message was recorded"


async def run_and_resume(
    tmp_path: Path, server: HttpServer, api: HostileApi, agent: str, turns: int = 5, **options: Any
) -> tuple[RunResult, RunResult]:
    """Run `agent` to its turn budget against `api`, then resume it for three more turns."""
    manifest = manifest_for(tmp_path, server, [agent], turns, **options)
    with hostile_api(api) as url:
        first = await hostile_run(url, tmp_path, manifest)
        assert_valid_and_accounted(api, first.run_dir, [agent])
        assert stop_reason(first.run_dir, agent) == f"agent budget: turns ({turns} of {turns})"
        second = await hostile_run(url, tmp_path, resume=first.run_dir, overrides={"budget.agent.turns": turns + 3})
    assert_valid_and_accounted(api, second.run_dir, [agent])
    conversation_is_clean(second.run_dir, agent)
    assert stop_reason(second.run_dir, agent) == f"agent budget: turns ({turns + 3} of {turns + 3})"
    return first, second


def test_agents_told_the_same_retry_after_come_back_at_different_instants() -> None:
    """The jitter itself, over many draws (two retries of one run may round to the same wait)."""
    backend = MessagesBackend(api_key="k", base_url=None, retry=Retry(initial_s=0.05, max_s=1.0))
    waits = [backend._wait(1, 0.2) for _ in range(200)]
    assert all(0.2 <= wait <= 0.25 for wait in waits) and len({round(wait, 3) for wait in waits}) > 20
    backoffs = [backend._wait(3, None) for _ in range(200)]
    assert all(0.1 <= wait <= 0.2 for wait in backoffs) and len({round(wait, 3) for wait in backoffs}) > 20


async def test_rate_limits_with_and_without_retry_after_are_waited_out_with_jitter_and_request_ids(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(schedule={"limited": ["rate_limit", "rate_limit_bare", None, "rate_limit"]}, retry_after_s=0.2)
    first, _ = await run_and_resume(tmp_path, server_set, api, "limited")
    retries = events(first.run_dir, "limited", "retry")
    assert [r["status"] for r in retries] == [429, 429, 429]
    assert 0.2 <= retries[0]["wait_s"] <= 0.25 and 0.2 <= retries[2]["wait_s"] <= 0.25  # retry-after, plus jitter
    assert all(r["request_id"].startswith("req_") for r in retries)
    assert retries[0]["error"] == "429 rate_limit_error: rate limited"


async def test_an_overload_storm_far_longer_than_ten_attempts_is_waited_out_and_shown_as_waiting(
    tmp_path: Path, server_set: HttpServer
) -> None:
    storm = 60
    api = HostileApi(schedule={"stormy": [None, *["overloaded"] * storm]})
    manifest = manifest_for(tmp_path, server_set, ["stormy"], 4)
    lines: list[str] = []
    seen: list[dict[str, Any]] = []
    with hostile_api(api) as url:
        outcome: list[RunResult] = []

        async def team() -> None:
            console = ConsoleOptions(port=0, operators=["ada"])
            outcome.append(await hostile_run(url, tmp_path, manifest, announce=lines.append, console=console))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(team)
            with anyio.fail_after(60):
                while not any(line.startswith("console: ") for line in lines):
                    await anyio.sleep(0.02)
                base = next(line for line in lines if line.startswith("console: ")).split()[1].rstrip("/")
                async with httpx2.AsyncClient() as http:
                    while not outcome and not seen:
                        rows = (await http.get(f"{base}/api/team")).json()["rows"]
                        seen += [row for row in rows if row["state"] == "waiting"]
                        await anyio.sleep(0.02)
        [result] = outcome
    assert seen and seen[0]["doing"].startswith("model API failing since ")
    assert "529 overloaded_error: Overloaded" in seen[0]["doing"]
    assert len(events(result.run_dir, "stormy", "retry")) == storm
    assert stop_reason(result.run_dir, "stormy") == "agent budget: turns (4 of 4)"
    assert_valid_and_accounted(api, result.run_dir, ["stormy"])


async def test_server_errors_resets_mid_body_malformed_and_usage_less_answers_are_retried(
    tmp_path: Path, server_set: HttpServer
) -> None:
    faults = ["server_error", "server_error", "server_error", "server_error", "reset", None, "malformed", "no_usage"]
    api = HostileApi(schedule={"flaky": faults})
    first, _ = await run_and_resume(tmp_path, server_set, api, "flaky")
    retries = events(first.run_dir, "flaky", "retry")
    assert [r["status"] for r in retries[:4]] == [502, 503, 504, 500]
    assert "APIConnectionError" in retries[4]["error"] or "malformed" in retries[4]["error"]
    assert "malformed" in retries[5]["error"] or "decode" in retries[5]["error"].lower()
    assert "MalformedResponse" in retries[6]["error"]
    assert len(retries) == 7


async def test_an_empty_reply_is_asked_again_and_never_recorded(tmp_path: Path, server_set: HttpServer) -> None:
    api = HostileApi(schedule={"quiet": [None, "empty", "empty", None, "empty"]})
    first, _ = await run_and_resume(tmp_path, server_set, api, "quiet")
    assert [e["count"] for e in events(first.run_dir, "quiet", "empty_reply")] == [1, 2, 1]


async def test_empty_replies_without_end_stop_the_agent_with_a_clear_reason_and_resume_goes_on(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(schedule={"mute": [None, "empty", "empty", "empty"]})
    manifest = manifest_for(tmp_path, server_set, ["mute"], 6)
    with hostile_api(api) as url:
        first = await hostile_run(url, tmp_path, manifest)
        assert stop_reason(first.run_dir, "mute") == (
            "model error: the model answered with no content 3 times in a row"
            " (stop_reason end_turn; retry.max_empty_replies is 3)"
        )
        second = await hostile_run(url, tmp_path, resume=first.run_dir)
    assert stop_reason(second.run_dir, "mute") == "agent budget: turns (6 of 6)"
    assert_valid_and_accounted(api, second.run_dir, ["mute"])
    conversation_is_clean(second.run_dir, "mute")


async def test_resume_repairs_a_record_that_holds_an_empty_assistant_message(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi()
    manifest = manifest_for(tmp_path, server_set, ["old"], 2)
    with hostile_api(api) as url:
        first = await hostile_run(url, tmp_path, manifest)
        with first.run_dir.agent_log_path("old").open("a") as record:  # what the old client wrote
            for role, content in (("assistant", []), ("user", [{"type": "text", "text": "Keep going."}])):
                record.write(json.dumps({"t": 0, "type": "message", "role": role, "content": content}) + "\n")
        second = await hostile_run(url, tmp_path, resume=first.run_dir, overrides={"budget.agent.turns": 4})
    assert stop_reason(second.run_dir, "old") == "agent budget: turns (4 of 4)"
    assert_valid_and_accounted(api, second.run_dir, ["old"])


async def test_a_conversation_too_long_for_the_model_is_trimmed_so_its_summary_fits(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(context_limit=1_700)  # reached after a few turns; compaction is never asked for before
    _first, second = await run_and_resume(
        tmp_path, server_set, api, "wordy", turns=14, extra="[context]\ncompact_at_tokens = 100000\n"
    )
    compactions = events(second.run_dir, "wordy", "compaction")
    assert compactions and all(c["summarised"] for c in compactions)
    assert "My notes:" in compactions[0]["head"]["content"][0]["text"]
    purposes = [e["purpose"] for e in events(second.run_dir, "wordy", "model_call")]
    assert purposes.count("compaction") == len(compactions)


async def test_a_huge_input_is_compacted_away_and_the_agent_goes_on(tmp_path: Path, server_set: HttpServer) -> None:
    api = HostileApi(schedule={"huge": [None, None, "huge"]}, context_limit=12_000, huge_chars=80_000)
    first, _ = await run_and_resume(tmp_path, server_set, api, "huge", turns=6)
    assert events(first.run_dir, "huge", "compaction")
    written = server_set.data_dir / "sandbox" / "workspaces" / "huge" / "huge.txt"
    assert written.stat().st_size == 80_000


async def test_compaction_reads_the_cached_conversation_and_an_empty_summary_keeps_the_notes(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(empty_summaries_from=1)
    first, _ = await run_and_resume(
        tmp_path,
        server_set,
        api,
        "notes",
        turns=24,
        extra="[context]\ncompact_at_tokens = 2000\nkeep_recent_turns = 2\n",
    )
    compactions = events(first.run_dir, "notes", "compaction")
    assert len(compactions) >= 2 and compactions[0]["summarised"] and not compactions[1]["summarised"]
    first_notes = compactions[0]["head"]["content"][0]["text"].partition(SUMMARY_HEADER)[2]
    assert first_notes.startswith("My notes:")
    assert compactions[1]["head"]["content"][0]["text"].endswith(first_notes)
    assert all(choice is None for choice in api.tool_choices)
    calls = events(first.run_dir, "notes", "model_call")
    summary_call = next(call for call in calls if call["purpose"] == "compaction")
    usage = summary_call["usage"]
    assert usage["cache_read_input_tokens"] > 4 * (usage["input_tokens"] + usage["cache_creation_input_tokens"])


async def test_a_tool_call_cut_off_by_max_tokens_is_answered_with_an_error_and_never_run(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(schedule={"cut": [None, None, "max_tokens_tool"]})
    first, _ = await run_and_resume(tmp_path, server_set, api, "cut")
    notes = server_set.data_dir / "sandbox" / "workspaces" / "cut" / "notes.md"
    assert notes.read_text() == "cut notes after turn 1\n"  # written by turn 2; turn 3's cut-off write never ran
    cut = [e for e in events(first.run_dir, "cut", "message") if e["role"] == "user"][3]
    assert cut["content"][0]["is_error"] and cut["content"][0]["content"].startswith("not run: your reply reached")
    assert all(call["input"].get("content") != "weak = in" for call in events(first.run_dir, "cut", "tool_call"))


async def test_pause_turn_sends_the_paused_turn_back_without_a_nudge(tmp_path: Path, server_set: HttpServer) -> None:
    api = HostileApi(schedule={"paused": [None, "pause"]})
    first, _ = await run_and_resume(tmp_path, server_set, api, "paused")
    assert api.continued == ["paused"]
    messages = [(e["role"], e["content"]) for e in events(first.run_dir, "paused", "message")]
    paused_at = next(i for i, (_, content) in enumerate(messages) if "Let me think about step" in str(content))
    assert messages[paused_at + 1][0] == "assistant"  # the continuation, with no nudge between


async def test_a_refusal_stops_the_agent_without_an_empty_message_and_resume_goes_on(
    tmp_path: Path, server_set: HttpServer
) -> None:
    api = HostileApi(schedule={"refused": [None, "refusal"]})
    manifest = manifest_for(tmp_path, server_set, ["refused"], 5)
    with hostile_api(api) as url:
        first = await hostile_run(url, tmp_path, manifest)
        assert stop_reason(first.run_dir, "refused") == "the model refused to continue (stop_reason refusal)"
        second = await hostile_run(url, tmp_path, resume=first.run_dir)
    assert stop_reason(second.run_dir, "refused") == "agent budget: turns (5 of 5)"
    assert_valid_and_accounted(api, second.run_dir, ["refused"])
    conversation_is_clean(second.run_dir, "refused")


async def test_thinking_blocks_go_back_with_their_signatures(tmp_path: Path, server_set: HttpServer) -> None:
    api = HostileApi(schedule={"thinker": ["thinking", "thinking", None, "thinking"]})
    first, _ = await run_and_resume(tmp_path, server_set, api, "thinker")
    thought = [e for e in events(first.run_dir, "thinker", "message") if e["content"][0]["type"] == "thinking"]
    assert len(thought) == 3


def test_a_bad_api_key_stops_aar_run_at_once_with_one_sentence_and_exit_1(
    tmp_path: Path, server_set: HttpServer
) -> None:
    agents = ["key-a", "key-b", "key-c"]
    manifest = manifest_for(tmp_path, server_set, agents, 4)
    api = HostileApi()
    with hostile_api(api) as url:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-wrong", "ANTHROPIC_BASE_URL": url}
        runs = tmp_path / "runs"
        command = [AAR, "run", str(manifest), "--runs-dir", str(runs), "--no-console", "--no-live"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    sentence = (
        "The run stopped because the Messages API rejected the API key; set a valid ANTHROPIC_API_KEY"
        " (401 authentication_error: invalid x-api-key); then continue it with aar run --resume."
    )
    assert f"error: {sentence}" in done.stderr.splitlines()
    run_dir = RunDir(next(runs.iterdir()))
    assert f"continue with: aar run --resume {run_dir.path}" in done.stderr
    assert "stopped: The run stopped because" in (run_dir.path / "summary.txt").read_text()
    for agent in agents:
        assert stop_reason(run_dir, agent) == sentence


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("model", "The run stopped because the Messages API does not know model 'claude-nope'"),
        ("permission", "The run stopped because the API key is not allowed to do this"),
    ],
)
async def test_an_unknown_model_or_no_permission_stops_the_whole_run_and_resume_goes_on(
    tmp_path: Path, server_set: HttpServer, case: str, expected: str
) -> None:
    agents = [f"{case}-a", f"{case}-b", f"{case}-c"]
    extra = 'model = "claude-nope"\n[pricing]\ninput = 5\noutput = 25\n' if case == "model" else ""
    manifest = manifest_for(tmp_path, server_set, agents, 4, extra=extra)
    api = HostileApi(schedule={"*": ["permission"]} if case == "permission" else {}, latency_s=0.2)
    with hostile_api(api) as url:
        first = await hostile_run(url, tmp_path, manifest)
        reason = first.summary["stopped"]
        assert reason.startswith(expected) and reason.endswith("then continue it with aar run --resume.")
        for agent in agents:
            assert stop_reason(first.run_dir, agent) == reason
            assert events(first.run_dir, agent, "retry") == []
        assert sum(api.requests.values()) <= len(agents)  # no agent asked twice
        second = await hostile_run(url, tmp_path, resume=first.run_dir, overrides={"model": MODEL})
    assert second.summary["stopped"] is None
    for agent in agents:
        assert stop_reason(second.run_dir, agent) == "agent budget: turns (4 of 4)"
    assert api.invalid == []


async def test_the_team_overshoots_its_dollar_budget_by_at_most_one_call(
    tmp_path: Path, server_set: HttpServer
) -> None:
    agents = [f"spender{n}" for n in range(4)]
    manifest = write_manifest(
        tmp_path, agents=agents, server=server_set, tools=TOOLS, agent_budget={}, team_budget={"dollars": 0.05}
    )
    api = HostileApi(latency_s=0.3)
    with hostile_api(api) as url:
        result = await hostile_run(url, tmp_path, manifest)
    calls = [call["dollars"] for agent in agents for call in events(result.run_dir, agent, "model_call")]
    assert all(stop_reason(result.run_dir, agent).startswith("team budget: dollars") for agent in agents)
    assert 0.05 <= sum(calls) <= 0.05 + max(calls)
    assert_valid_and_accounted(api, result.run_dir, agents)


async def test_soak_hundreds_of_turns_with_random_faults_end_alive_or_on_budget(
    tmp_path: Path, server_set: HttpServer
) -> None:
    agents = [f"soak{n}" for n in range(4)]
    faults = (*TRANSIENT, "empty", "max_tokens_tool", "pause", "thinking", "huge")
    api = HostileApi(random_rate=0.3, random_faults=faults, seed=12, context_limit=9_000, huge_chars=40_000)
    manifest = manifest_for(
        tmp_path, server_set, agents, 80, extra="[context]\ncompact_at_tokens = 5000\nkeep_recent_turns = 2\n"
    )
    with hostile_api(api) as url:
        result = await hostile_run(url, tmp_path, manifest)
    assert len(api.faults_sent) > 100
    assert {fault for _, _, fault in api.faults_sent} == set(faults)
    for agent in agents:
        assert stop_reason(result.run_dir, agent) == "agent budget: turns (80 of 80)"
        conversation_is_clean(result.run_dir, agent)
    assert result.summary["team"]["turns"] == 320
    assert sum(len(events(result.run_dir, agent, "compaction")) for agent in agents) >= len(agents)
    assert sum(len(events(result.run_dir, agent, "empty_reply")) for agent in agents) > 0
    assert_valid_and_accounted(api, result.run_dir, agents)
    price = known_price(MODEL)
    assert price is not None
    billed = sum(cost(Usage.from_api(usage), price) for _, usage in api.billed.values())
    assert abs(result.summary["team"]["dollars"] - billed) < 1e-3
