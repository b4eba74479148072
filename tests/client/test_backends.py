"""Which backend runs, the cache breakpoints a request carries, and Claude's path through ANTHROPIC_BASE_URL."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from client.backends import choose_backend
from client.backends.anthropic import cached_messages, cached_tools
from client.scripted.server import serve_in_thread
from client.team import RunRequest, run_team
from tests.client.support import events, write_manifest
from tests.support import HttpServer

pytestmark = pytest.mark.anyio


def test_without_a_key_auto_runs_the_scripted_researcher_and_with_one_claude() -> None:
    assert choose_backend("auto", {}).kind == "scripted"
    assert "no ANTHROPIC_API_KEY is set" in choose_backend("auto", {}).note
    claude = choose_backend("auto", {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    assert (claude.kind, claude.api_key, claude.base_url) == ("anthropic", "k", "http://127.0.0.1:9")
    assert claude.note == "backend: Claude through the Messages API at http://127.0.0.1:9"
    assert choose_backend("scripted", {"ANTHROPIC_API_KEY": "k"}).kind == "scripted"
    with pytest.raises(ValueError, match="needs ANTHROPIC_API_KEY"):
        choose_backend("anthropic", {})


def test_tools_system_and_the_latest_message_carry_cache_breakpoints_without_changing_the_conversation() -> None:
    tools = [{"name": "a__x", "input_schema": {}}, {"name": "b__y", "input_schema": {}}]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "start"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "a__x", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    before = copy.deepcopy(messages)
    marked = cached_messages(messages)
    assert messages == before
    assert marked[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in str(marked[:-1])
    assert [("cache_control" in tool) for tool in cached_tools(tools)] == [False, True]


async def test_with_an_api_key_the_client_calls_the_messages_api_at_anthropic_base_url(
    tmp_path: Path, server_set: HttpServer
) -> None:
    manifest = write_manifest(tmp_path, agents=["alpha"], server=server_set, agent_budget={"turns": 3})
    with serve_in_thread() as base_url:  # any server that speaks the Messages API will do
        notes: list[str] = []
        result = await run_team(
            RunRequest(
                manifest=manifest,
                runs_root=tmp_path / "runs",
                environ={"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": base_url},
                announce=notes.append,
            )
        )
    assert notes[1] == f"backend: Claude through the Messages API at {base_url}"
    assert result.summary["backend"] == "anthropic"
    calls = events(result.run_dir, "alpha", "model_call")
    assert len(calls) == 3 and all(call["request_id"].startswith("req_") for call in calls)
    assert calls[0]["usage"]["cache_creation_input_tokens"] > 0 and calls[1]["usage"]["cache_read_input_tokens"] > 0
    assert result.summary["agents"][0]["dollars"] > 0
