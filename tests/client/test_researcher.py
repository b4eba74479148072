"""The scripted researcher's state machine, driven by hand-written tool results (no servers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from client.compaction import compacted_head, kept_turns, summary_requests
from client.run_manifest import ToolCatalogue
from client.scripted.methods import Knobs, read_knobs, render
from client.scripted.researcher import MEMORY_MARK, respond

ALL_TOOLS = [{"name": name} for name in ToolCatalogue.load().names(["forum", "storage", "sandbox", "pgr"])]
KICKOFF = "You are ada, one of 2 researchers on this team. Your starting direction: Data reweighting.\n"

Results = Callable[[str, dict[str, Any]], dict[str, Any]]


def honest_servers(feed_posts: list[dict[str, Any]] | None = None) -> Results:
    """Plausible answers of the real servers to each tool."""
    counter = iter(range(100, 10_000))

    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        match name:
            case "forum__feed":
                posts = feed_posts if arguments["since"] == 0 else []
                return {"posts": posts or [], "next_cursor": 7, "has_more": False}
            case "pgr__task_info":
                return {"tasks": [{"name": "negation"}, {"name": "wordnet-living"}], "budget": {}}
            case "forum__post" | "forum__reply":
                return {"id": next(counter)}
            case "sandbox__exec":
                return {"exit_code": 0, "stdout": "wrote predictions.txt", "stderr": ""}
            case "sandbox__read_file" if arguments["path"] == "predictions.txt":
                return {"content": "0110" * 10}
            case "sandbox__read_file":
                return {"content": render(Knobs(coef=0.7, k=5), agent="bob", cycle=1, title="t", rationale="r")}
            case "pgr__evaluate_predictions":
                return {"task": arguments["task"], "accuracy": 0.8, "pgr": 0.5}
            case "sandbox__save_snapshot":
                return {"id": f"{next(counter):040x}"}
            case "pgr__submit":
                return {"id": f"sub_{next(counter):012x}", "state": "queued"}
            case "pgr__submission":
                return {"id": arguments["submission_id"], "state": "done", "pgr_mean": 0.61}
        return {"ok": True}

    return answer


def drive(steps: int, answer: Results, tools: list[dict[str, str]] = ALL_TOOLS) -> list[dict[str, Any]]:
    """Run the researcher for `steps` turns; the conversation, as the client would keep it."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": KICKOFF}]}]
    for _ in range(steps):
        content, stop = respond("ada", {"messages": messages, "tools": tools})
        assert stop == "tool_use"
        messages.append({"role": "assistant", "content": content})
        use = content[-1]
        result = json.dumps(answer(use["name"], use["input"]))
        messages.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": result}]}
        )
    return messages


def calls(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"][-1]["name"] for m in messages if m["role"] == "assistant"]


def test_the_researcher_orients_claims_and_then_runs_a_full_cycle() -> None:
    messages = drive(13, honest_servers())
    assert calls(messages) == [
        "forum__feed",
        "pgr__task_info",
        "forum__post",
        "sandbox__write_file",
        "sandbox__exec",
        "sandbox__read_file",
        "pgr__evaluate_predictions",
        "sandbox__save_snapshot",
        "pgr__submit",
        "forum__post",
        "pgr__submission",
        "forum__reply",
        "forum__feed",
    ]
    uses = [m["content"][-1]["input"] for m in messages if m["role"] == "assistant"]
    assert uses[2]["kind"] == "claim"
    assert uses[4]["command"].startswith("python -m servers.w2s.runner --task wordnet-living --entry method.py:method")
    result_post = uses[9]
    assert result_post["kind"] == "result" and result_post["snapshot"] and result_post["submission"].startswith("sub_")
    assert "PGR 0.50" in result_post["title"]
    assert "0.61" in uses[11]["body"]
    assert read_knobs(uses[3]["content"]) == Knobs(coef=0.5, keep=0.7)  # the reweighting family


def test_the_researcher_builds_on_the_best_posted_result() -> None:
    best = {"id": 3, "kind": "result", "author": "bob", "title": "x: validation PGR 0.90", "snapshot": "ab" * 20}
    worse = {"id": 4, "kind": "result", "author": "cy", "title": "y: validation PGR 0.20", "snapshot": "cd" * 20}
    messages = drive(7, honest_servers([best, worse]))
    assert calls(messages)[3:7] == [
        "sandbox__load_snapshot",
        "sandbox__read_file",
        "forum__vote",
        "sandbox__write_file",
    ]
    uses = [m["content"][-1]["input"] for m in messages if m["role"] == "assistant"]
    assert uses[3] == {"snapshot": "ab" * 20}
    assert uses[5] == {"post_id": 3, "value": 1}
    written = read_knobs(uses[6]["content"])
    assert written is not None and written != Knobs(coef=0.7, k=5)  # one knob of bob's method varied
    assert sum(a != b for a, b in zip(vars(written).values(), vars(Knobs(coef=0.7, k=5)).values(), strict=True)) == 1


def test_the_researcher_skips_the_steps_whose_tools_it_is_not_offered() -> None:
    narrow = [{"name": n} for n in ("forum__feed", "forum__post", "sandbox__write_file", "sandbox__save_snapshot")]
    messages = drive(7, honest_servers(), narrow)
    assert calls(messages) == [
        "forum__feed",
        "forum__post",
        "sandbox__write_file",
        "sandbox__save_snapshot",
        "forum__post",
        "forum__feed",
        "sandbox__write_file",
    ]


def test_the_researcher_carries_on_after_its_conversation_is_compacted() -> None:
    messages = drive(9, honest_servers())
    full_next = respond("ada", {"messages": messages, "tools": ALL_TOOLS})
    summary, stop = respond("ada", {"messages": next(summary_requests(messages)), "tools": ALL_TOOLS})
    assert stop == "end_turn" and MEMORY_MARK in summary[0]["text"]
    for keep in (0, 2):
        kept = kept_turns(messages, keep)
        compacted = [compacted_head(KICKOFF, summary[0]["text"]), *messages[len(messages) - kept :]]
        after = respond("ada", {"messages": compacted, "tools": ALL_TOOLS})
        assert after[0][-1]["name"] == full_next[0][-1]["name"] == "forum__post"
        assert after[0][-1]["input"] == full_next[0][-1]["input"]


def test_a_call_the_researcher_did_not_choose_does_not_change_its_course() -> None:
    messages = drive(2, honest_servers())
    injected = {"type": "tool_use", "id": "toolu_fault_1", "name": "sandbox__exec", "input": {"command": "sleep 1"}}
    messages += [
        {"role": "assistant", "content": [injected]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_fault_1", "content": "refused", "is_error": True}
            ],
        },
    ]
    content, _ = respond("ada", {"messages": messages, "tools": ALL_TOOLS})
    assert content[-1]["name"] == "forum__post" and content[-1]["input"]["kind"] == "claim"
