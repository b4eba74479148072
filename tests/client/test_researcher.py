"""The scripted researcher's state machine, driven by hand-written tool results (no servers)."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from typing import Any

from client.compaction import compacted_head, kept_turns, summary_requests
from client.run_manifest import PROJECT_ROOT, ToolCatalogue
from client.scripted.methods import (
    LIBRARY,
    Knobs,
    combine,
    read_described,
    read_knobs,
    render,
    start_for,
    step_taken,
    vary,
    vary_untried,
)
from client.scripted.researcher import MEMORY_MARK, pooled, respond
from servers.w2s.methods import BASELINES

ALL_TOOLS = [{"name": name} for name in ToolCatalogue.load().names(["forum", "storage", "sandbox", "pgr"])]
KICKOFF = "You are ada, one of 2 researchers on this team. Your starting direction: Data reweighting.\n"

Results = Callable[[str, dict[str, Any]], dict[str, Any]]


def honest_servers(feed_posts: list[dict[str, Any]] | None = None) -> Results:
    """Plausible answers of the real servers to each tool; snapshots keep what was written."""
    counter = iter(range(100, 10_000))
    bobs = render(Knobs(base="weak_views", mix=0.5, coef=0.7, k=5), agent="bob", cycle=1, title="t", rationale="r")
    workspace = {"method.py": ""}
    snapshots: dict[str, str] = {}

    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        match name:
            case "forum__feed":
                posts = feed_posts if arguments["since"] == 0 else []
                return {"posts": posts or [], "next_cursor": 7, "has_more": False}
            case "pgr__task_info":
                return {"tasks": [{"name": "negation"}, {"name": "wordnet-living"}], "budget": {}}
            case "forum__post" | "forum__reply":
                return {"id": next(counter)}
            case "sandbox__write_file":
                workspace[arguments["path"]] = arguments["content"]
                return {"ok": True}
            case "sandbox__exec":
                return {"exit_code": 0, "stdout": "wrote predictions.txt", "stderr": ""}
            case "sandbox__read_file" if arguments["path"] == "predictions.txt":
                return {"content": "0110" * 10}
            case "sandbox__read_file":
                return {"content": workspace[arguments["path"]]}
            case "sandbox__load_snapshot":
                workspace["method.py"] = snapshots.get(arguments["snapshot"], bobs)
                return {"ok": True}
            case "pgr__evaluate_predictions":
                return {"task": arguments["task"], "accuracy": 0.8, "pgr": 0.5}
            case "sandbox__save_snapshot":
                snapshot = f"{next(counter):040x}"
                snapshots[snapshot] = workspace["method.py"]
                return {"id": snapshot}
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


def uses_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"][-1]["input"] for m in messages if m["role"] == "assistant"]


def test_the_researcher_refines_its_directions_library_method_and_submits_only_what_beats_the_team() -> None:
    messages = drive(28, honest_servers())
    assert calls(messages) == [
        "forum__feed",
        "pgr__task_info",
        "forum__post",
        # cycle 1: its library method refined (the method as it is is in the brief), scored, submitted (the
        # team has submitted nothing yet), posted, and its official score reported under the post
        "sandbox__write_file",
        "sandbox__exec",
        "sandbox__read_file",
        "pgr__evaluate_predictions",
        "sandbox__save_snapshot",
        "forum__feed",  # what the team posted meanwhile, before deciding to submit
        "pgr__submit",
        "forum__post",
        "pgr__submission",
        "forum__reply",
        "forum__feed",
        # cycle 2: build on the best posted result (its own), refine it; an equal score is not worth a submission
        "sandbox__load_snapshot",
        "sandbox__read_file",
        "sandbox__write_file",
        "sandbox__exec",
        "sandbox__read_file",
        "pgr__evaluate_predictions",
        "sandbox__save_snapshot",
        "forum__feed",
        "forum__post",
        "forum__feed",
        # cycle 3: builds on the newest equal result
        "sandbox__load_snapshot",
        "sandbox__read_file",
        "sandbox__write_file",
        "sandbox__exec",
    ]
    uses = uses_of(messages)
    assert uses[2]["kind"] == "claim" and "top_confident" in uses[2]["body"]  # the reweighting direction
    assert uses[4]["command"].startswith("python -m servers.w2s.runner --task wordnet-living --entry method.py:method")
    first = read_knobs(uses[3]["content"])
    assert first == Knobs(base="top_confident", mix=0.0, keep=0.5)  # its idea in the template's knobs
    assert uses[9] == {"snapshot": uses[9]["snapshot"], "entry_point": "method.py:method"}
    result_post = uses[10]
    assert result_post["kind"] == "result" and result_post["submission"].startswith("sub_")
    assert "PGR 0.50" in result_post["title"] and read_described(result_post["title"]) == first
    assert result_post["snapshot"] == uses[9]["snapshot"]
    assert "0.61" in uses[12]["body"]
    assert uses[14] == {"snapshot": uses[9]["snapshot"]}
    refined = read_knobs(uses[16]["content"])
    assert refined is not None and refined != first and refined.base == "top_confident"
    assert uses[20]["based_on"] == uses[9]["snapshot"]
    finding = uses[22]
    assert finding["kind"] == "finding" and "submission" not in finding
    assert "does not beat the team's best submitted method" in finding["body"]


def test_the_researcher_builds_on_the_best_posted_result_and_combines_it_with_another_method() -> None:
    best = {
        "id": 3,
        "kind": "result",
        "author": "bob",
        "snapshot": "ab" * 20,
        "submission": "sub_1",
        "title": f"{Knobs(base='weak_views', mix=0.5, coef=0.7, k=5).describe()}: validation PGR 0.90",
    }
    worse = {"id": 4, "kind": "finding", "author": "cy", "title": "BASE=bootstrap: validation PGR 0.20",
             "snapshot": "cd" * 20}  # fmt: skip
    messages = drive(15, honest_servers([best, worse]))
    assert calls(messages)[10:15] == [
        "forum__feed",
        "sandbox__load_snapshot",
        "sandbox__read_file",
        "forum__vote",
        "sandbox__write_file",
    ]
    uses = uses_of(messages)
    assert uses[11] == {"snapshot": "ab" * 20}
    assert uses[13] == {"post_id": 3, "value": 1}
    # bob's knobs with the library method of ada's own direction (data reweighting: top_confident)
    assert read_knobs(uses[14]["content"]) == Knobs(base="top_confident", mix=0.5, coef=0.7, k=5)


def test_a_combination_the_team_has_posted_already_is_not_tried_again() -> None:
    bobs = Knobs(base="weak_views", mix=0.5, coef=0.7, k=5)
    best = {"id": 3, "kind": "result", "author": "bob", "snapshot": "ab" * 20,
            "title": f"{bobs.describe()}: validation PGR 0.90"}  # fmt: skip
    posted = Knobs(base="top_confident", mix=0.5, coef=0.7, k=5)  # what ada would combine bob's method into
    done = {"id": 4, "kind": "result", "author": "cy", "snapshot": "cd" * 20,
            "title": f"{posted.describe()}: validation PGR 0.30"}  # fmt: skip
    messages = drive(15, honest_servers([best, done]))
    written = read_knobs(uses_of(messages)[14]["content"])
    assert written is not None and written != posted and step_taken(bobs, written) is not None, written


def test_a_refinement_moves_one_knob_and_a_library_method_is_refined_first() -> None:
    rng = random.Random(0)
    start = Knobs(base="noisy_channel")
    refined, change = vary(start, rng)
    assert refined == Knobs(base="noisy_channel", mix=0.5) and "MIX" in change
    for _ in range(20):
        varied, _ = vary(refined, rng)
        assert sum(a != b for a, b in zip(vars(varied).values(), vars(refined).values(), strict=True)) == 1


def two_task_answers(servers: Results, living: float = 0.6) -> Results:
    """Two public tasks with their gaps; validation answers `living` on wordnet-living, 0.2 on negation."""
    tasks = [
        {"name": "negation", "acc_weak": 0.70, "acc_ceiling": 0.94},
        {"name": "wordnet-living", "acc_weak": 0.75, "acc_ceiling": 0.84},
    ]
    scores = {"wordnet-living": living, "negation": 0.2}

    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name == "pgr__task_info":
            return {"tasks": tasks, "budget": {}}
        if name == "pgr__evaluate_predictions":
            return {"task": arguments["task"], "accuracy": 0.8, "pgr": scores[arguments["task"]]}
        return servers(name, arguments)

    return answer


def test_a_method_is_validated_on_the_default_task_and_the_one_with_the_widest_gap_and_their_pgr_pooled() -> None:
    messages = drive(14, two_task_answers(honest_servers()))
    assert calls(messages)[3:11] == [
        "sandbox__write_file",
        "sandbox__exec",
        "sandbox__read_file",
        "pgr__evaluate_predictions",
        "sandbox__exec",
        "sandbox__read_file",
        "pgr__evaluate_predictions",
        "sandbox__save_snapshot",
    ]
    uses = uses_of(messages)
    assert [uses[i]["command"].split()[4] for i in (4, 7)] == ["wordnet-living", "negation"]
    assert [uses[i]["task"] for i in (6, 9)] == ["wordnet-living", "negation"]
    post = uses[13]
    # pooled: (0.09 * 0.60 + 0.24 * 0.20) / (0.09 + 0.24); the plain mean (0.40) would follow the noisier task
    assert "validation PGR 0.31 on wordnet-living+negation" in post["title"]
    assert "from wordnet-living 0.60, negation 0.20, each weighed by its teacher-to-ceiling gap" in post["body"]


def test_bootstrap_is_first_refined_into_its_own_first_student_and_a_step_that_paid_off_is_taken_again() -> None:
    rng = random.Random(0)
    own, change = vary(Knobs(base="bootstrap"), rng)
    assert own == Knobs(base="bootstrap", mix=0.0, simple=8) and "bootstrapping's idea at its simplest" in change
    larger = Knobs(base="bootstrap", mix=0.0, simple=16)
    assert step_taken(own, larger) == ("simple", True)
    assert step_taken(own, Knobs(base="bootstrap", mix=0.2, simple=16)) is None  # two knobs: no single step
    assert vary(larger, rng, again=("simple", True))[0] == Knobs(base="bootstrap", mix=0.0, simple=32)
    at_the_end = Knobs(base="bootstrap", mix=0.0, simple=32)
    varied, _ = vary(at_the_end, rng, again=("simple", True))  # nowhere further to go: some other step
    assert varied != at_the_end and step_taken(at_the_end, varied) is not None


def test_a_step_onto_a_method_the_team_has_posted_is_drawn_again() -> None:
    best = Knobs(base="aux_confidence", mix=0.5, keep=0.5)
    first, _ = vary(best, random.Random(3))
    again, _ = vary(best, random.Random(3), again=("keep", False))
    tried = {first, again}
    for step in (None, ("keep", False)):
        varied, change = vary_untried(best, random.Random(3), tried, again=step)
        assert varied not in tried and step_taken(best, varied) is not None, change
    assert vary_untried(best, random.Random(3), set()) == vary(best, random.Random(3)), "nothing tried: the same step"


def test_the_nine_directions_of_the_default_team_start_from_nine_different_library_methods() -> None:
    manifest = tomllib.loads((PROJECT_ROOT / "manifests" / "runs" / "nine.toml").read_text())
    starts = {start_for(agent["direction"], agent["name"]) for agent in manifest["agents"]}
    assert starts == set(LIBRARY) and len(starts) == 9 and starts <= set(BASELINES)


def test_the_researcher_skips_the_steps_whose_tools_it_is_not_offered() -> None:
    narrow = [{"name": n} for n in ("forum__feed", "forum__post", "sandbox__write_file", "sandbox__save_snapshot")]
    messages = drive(7, honest_servers(), narrow)
    assert calls(messages) == [
        "forum__feed",
        "forum__post",
        "sandbox__write_file",
        "sandbox__save_snapshot",
        "forum__feed",
        "forum__post",
        "forum__feed",
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
        assert after[0][-1]["name"] == full_next[0][-1]["name"] == "pgr__submit"
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


def test_pooled_pgr_weighs_each_task_by_its_gap_and_falls_back_to_the_mean_without_gaps() -> None:
    scores = {"wide": 0.2, "narrow": 1.0}
    assert pooled(scores, {"wide": 0.3, "narrow": 0.1}) == 0.4
    assert pooled(scores, {"wide": 0.3}) == 0.6  # a task without its gap: no weights to trust
    assert pooled({"wide": 0.2}, {}) == 0.2


def test_a_method_whose_predictions_repeat_an_earlier_query_is_not_submitted() -> None:
    servers = honest_servers()

    def answer(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name == "pgr__evaluate_predictions":
            return {"task": arguments["task"], "accuracy": 0.8, "pgr": 0.5, "repeated": True}
        return servers(name, arguments)

    post = uses_of(drive(10, answer))[9]
    assert post["kind"] == "finding" and "submission" not in post
    assert "repeat a method the team validated before" in post["body"]


def test_a_method_that_ties_a_teammates_submitted_result_as_posted_is_not_submitted() -> None:
    # pooled (0.09 * 0.65 + 0.24 * 0.2) / 0.33 = 0.3227, posted as 0.32: compared unrounded, it would "beat"
    # bob's 0.32 (the same answers) and spend a submission
    bobs = {"id": 3, "kind": "result", "author": "bob", "snapshot": "ab" * 20, "submission": "sub_1",
            "title": f"{Knobs(base='plain_ce', mix=0.5).describe()}: validation PGR 0.32"}  # fmt: skip
    post = uses_of(drive(14, two_task_answers(honest_servers([bobs]), living=0.65)))[12]
    assert "submission" not in post and "does not beat the team's best submitted method (0.32)" in post["body"]


def test_combining_a_method_that_ignores_its_base_mixes_the_other_methods_answers_in() -> None:
    simple = Knobs(base="bootstrap", mix=0.0, simple=8)  # at MIX 0 its base is never called
    combined = combine(simple, Knobs(base="top_confident", mix=0.0, keep=0.5))
    assert combined is not None and combined[0] == Knobs(base="top_confident", mix=0.5, simple=8)
    assert "MIX 0 -> 0.5" in combined[1]
    mixed = Knobs(base="weak_views", mix=0.3)
    kept = combine(mixed, Knobs(base="plain_ce"))
    assert kept is not None and kept[0] == Knobs(base="plain_ce", mix=0.3) and "MIX" not in kept[1]
