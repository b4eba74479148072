"""The scripted researcher: a state machine that decides each step from the conversation it gets.

It does what a methodical new colleague would: read the forum feed, claim its direction, run the
library method its direction starts from on the validation inputs, score the predictions, save a
snapshot, post the result citing it, and then refine: build on the best result anyone posted
(load that snapshot, save with ``based_on``, vary one knob or combine it with its own direction's
library method or another good result's) or on its own best. A method is validated on two tasks,
their PGR pooled by their gaps (`pooled`). It spends official submissions only on a new method (not one the scorer
answered as a repeat of the team's earlier query) that validates best in the whole team (better
than every method submitted so far), reports the official score when it arrives, and so the
team's official PGR rises with its submissions.

It keeps no state between requests: `replay` rebuilds its memory by running the state machine
over the tool calls and results in the conversation, so a restarted server, a resumed run or a
compacted conversation (whose summary carries the memory as JSON) all continue where they were.
Tools it is not offered are skipped, so a narrower allowlist gives a narrower researcher.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from client.compaction import SUMMARY_REQUEST
from client.pgr_policy import FINAL_STATES
from client.scripted.methods import (
    ENTRY,
    FILE,
    Knobs,
    combine,
    read_described,
    read_knobs,
    render,
    start_for,
    step_taken,
    vary_untried,
)

MEMORY_MARK = "researcher-memory: "
FAULT_ID_PREFIX = "toolu_fault_"
DEFAULT_TASK = "wordnet-living"
MAX_FEED_PAGES = 3
_PGR_IN_TITLE = re.compile(r"PGR\s*[=:]?\s*(-?\d+(?:\.\d+)?)")
_DIRECTION = re.compile(r"Your starting direction:\s*(.+)")


@dataclass
class Memory:
    """Everything the researcher knows; rebuilt from the conversation on every request."""

    agent: str
    direction: str = "open"
    phase: str = "feed"
    cycle: int = 0
    feed_cursor: int = 0
    feed_pages: int = 0
    claimed: bool = False
    task: str = DEFAULT_TASK
    hardest: str | None = None
    """The public task with the widest gap between teacher and ceiling: a method is validated on it too."""
    gaps: dict[str, float] = field(default_factory=dict)
    """Each task's validation gap between teacher and ceiling (task_info), which weighs its validation PGR."""
    task_info_seen: bool = False
    results: list[dict[str, Any]] = field(default_factory=list)
    tried_bases: list[str] = field(default_factory=list)
    best_validation: float | None = None
    best_knobs: dict[str, Any] | None = None
    again: tuple[str, bool] | None = None
    """The one-knob step that last raised my best validation: worth taking again."""
    submitted_best: float | None = None
    submissions_closed: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    last_call: str | None = None
    # the cycle under way
    knobs: dict[str, Any] | None = None
    change: str = ""
    base: dict[str, Any] | None = None
    run_note: str = ""
    predictions: str | None = None
    validation: dict[str, Any] | None = None
    scores: dict[str, float] = field(default_factory=dict)
    """This cycle's validation PGR per task scored so far."""
    fresh: bool = False
    """Whether any of this cycle's validation answers was new to the team (not `repeated` by the scorer)."""
    snapshot: str | None = None
    submission: str | None = None
    reply_to: dict[str, Any] | None = None
    submit_note: str = ""

    @property
    def start(self) -> str:
        """The library method this researcher's direction starts from."""
        return start_for(self.direction, self.agent)

    @property
    def team_submitted_best(self) -> float | None:
        """The best validation PGR of any method the team has submitted (mine included)."""
        submitted = [r["pgr"] for r in self.results if r.get("submitted") and r["pgr"] is not None]
        mine = [] if self.submitted_best is None else [self.submitted_best]
        return max(submitted + mine, default=None)

    @property
    def team_validated_best(self) -> float | None:
        return max((r["pgr"] for r in self.results if r["pgr"] is not None), default=None)

    def rng(self, salt: str) -> random.Random:
        return random.Random(f"{self.agent}:{self.cycle}:{salt}")


Action = tuple[str, dict[str, Any], str]
"""(tool name, input, a sentence saying why)."""


def replay(agent: str, messages: list[dict[str, Any]], tools: set[str]) -> Memory:
    """Run the state machine over the conversation's tool calls and their results (`tools`: those offered)."""
    memory = Memory(agent=agent)
    if messages:
        _read_head(memory, _text(messages[0]["content"]))
    # after a compaction the memory already holds the kept turns, up to and including last_call
    catching_up = memory.last_call is not None and any(
        block.get("id") == memory.last_call for message in messages for block in _blocks(message["content"])
    )
    calls: dict[str, dict[str, Any]] = {}
    for message in messages:
        for block in _blocks(message["content"]):
            if block.get("type") == "tool_use" and not str(block.get("id", "")).startswith(FAULT_ID_PREFIX):
                calls[block["id"]] = block
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in calls:
                call = calls.pop(block["tool_use_id"])
                if catching_up:
                    catching_up = call["id"] != memory.last_call
                    continue
                _settle(memory, tools)
                observe(memory, call["name"], _text(block.get("content", "")), bool(block.get("is_error")))
                memory.last_call = call["id"]
    return memory


def _read_head(memory: Memory, text: str) -> None:
    """The kickoff names the direction; a compacted conversation's head also carries the memory."""
    if MEMORY_MARK in text:
        saved = json.loads(text.split(MEMORY_MARK, 1)[1].splitlines()[0])
        for name, value in saved.items():
            setattr(memory, name, value)
        return
    match = _DIRECTION.search(text)
    if match:
        memory.direction = match.group(1).strip()


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _text(content: Any) -> str:
    return "\n".join(block.get("text", "") for block in _blocks(content) if block.get("type") == "text")


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- deciding -------------------------------------------------------------------------------------


def decide(memory: Memory, tools: set[str]) -> Action | None:
    """The next tool call. None: none of the steps can be taken with the tools offered."""
    if not _settle(memory, tools):
        return None
    tool, act = _PHASES[memory.phase]
    arguments, why = act(memory)
    return tool, arguments, why


def _settle(memory: Memory, tools: set[str]) -> bool:
    """Start a cycle where one is due and skip steps whose tool is not offered; False if every step is skipped."""
    for _ in range(3 * len(_PHASES)):
        if memory.phase == "design":
            _design(memory, tools)
            continue
        tool = _PHASES[memory.phase][0]
        if tool in tools:
            return True
        observe(memory, tool, "skipped: not one of my tools", True, skipped=True)
    return False


def _design(memory: Memory, tools: set[str]) -> None:
    """Start a cycle: first a refinement of my direction's library method (the method as it is has its
    official score in the brief already); then build on the best posted result if it beats mine
    (varying it, or combining it with the best result of another method), else vary my own best."""
    memory.cycle += 1
    memory.base = memory.validation = memory.predictions = memory.snapshot = memory.submission = None
    memory.scores = {}
    memory.fresh = False
    memory.run_note = memory.submit_note = ""
    if memory.cycle == 1:
        knobs, change = _refine(memory, Knobs(base=memory.start))
        memory.knobs, memory.change = knobs, f"the library's {memory.start} refined: {change}"
        memory.phase = "write"
        return
    candidates = [r for r in memory.results if r["snapshot"] not in memory.tried_bases and r["pgr"] is not None]
    best = max(candidates, key=lambda r: r["pgr"], default=None)
    mine = memory.best_validation
    if best is not None and "sandbox__load_snapshot" in tools and (mine is None or best["pgr"] >= mine):
        memory.base = best
        memory.phase = "load"
        return
    start = Knobs(**memory.best_knobs) if memory.best_knobs else Knobs(base=memory.start)
    memory.knobs, memory.change = _refine(memory, start)
    memory.phase = "write"


def _refine(memory: Memory, knobs: Knobs) -> tuple[dict[str, Any], str]:
    """Every other cycle, combine with my direction's library method (else with the best result of
    another one); else vary one knob. Nine researchers who build on the same best result at the same
    time then bring nine different methods to it, and none lands on a method the team has posted
    already (its knobs are in the post's title)."""
    tried = {Knobs(**r["knobs"]) for r in memory.results if r.get("knobs")}
    if memory.cycle % 2 == 0:
        others = [
            r for r in memory.results if r.get("knobs") and r["pgr"] is not None and r["knobs"]["base"] != knobs.base
        ]
        best_other = max(others, key=lambda r: r["pgr"], default=None)
        partners = [Knobs(base=memory.start)] + ([Knobs(**best_other["knobs"])] if best_other else [])
        for partner in partners:
            combined = combine(knobs, partner)
            if combined is not None and combined[0] not in tried:
                return asdict(combined[0]), combined[1]
    varied, change = vary_untried(knobs, memory.rng("vary"), tried, again=memory.again)
    return asdict(varied), change


def _act_feed(m: Memory) -> tuple[dict[str, Any], str]:
    return {"since": m.feed_cursor, "limit": 50}, "Reading what is new on the forum."


def _act_task_info(m: Memory) -> tuple[dict[str, Any], str]:
    return {}, "Looking at the tasks, their baselines and my scoring budget."


def _act_claim(m: Memory) -> tuple[dict[str, Any], str]:
    body = (
        f"I will work on: {m.direction}\n\nPlan: start from the library's {m.start} (servers/w2s/methods),"
        " then refine it one idea at a time, building on the team's best results and posting every result"
        " with its snapshot (and its submission, when it validates best in the team)."
    )
    title = f"Claim ({m.agent}): {m.direction}"[:200]
    return {"title": title, "body": body, "kind": "claim", "tags": [m.start]}, "Claiming my direction."


def _act_load(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.base is not None
    return {"snapshot": m.base["snapshot"]}, f"Building on {m.base['author']}'s result (PGR {m.base['pgr']:.2f})."


def _act_read_base(m: Memory) -> tuple[dict[str, Any], str]:
    return {"path": FILE}, "Reading the method I loaded."


def _act_vote(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.base is not None
    return {"post_id": m.base["post"], "value": 1}, "Upvoting the result I build on."


def _act_write(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.knobs is not None
    knobs = Knobs(**m.knobs)
    origin = f"builds on snapshot {m.base['snapshot'][:12]} by {m.base['author']}; " if m.base else ""
    content = render(
        knobs,
        agent=m.agent,
        cycle=m.cycle,
        title=f"Method {knobs.describe()}",
        rationale=f"Direction: {m.direction} This version {origin}is {m.change}.",
    )
    return {"path": FILE, "content": content}, f"Writing a method: {knobs.describe()}."


def _act_run(m: Memory) -> tuple[dict[str, Any], str]:
    task = _scoring(m)
    command = f"python -m servers.w2s.runner --task {task} --entry {ENTRY} --out predictions.txt"
    return {"command": command, "timeout_s": 900}, f"Running it on the validation inputs of {task}."


def _act_read_predictions(m: Memory) -> tuple[dict[str, Any], str]:
    return {"path": "predictions.txt", "limit": 1_048_576}, "Reading the predictions."


def _act_evaluate(m: Memory) -> tuple[dict[str, Any], str]:
    return {"task": _scoring(m), "predictions": m.predictions or ""}, "Scoring the predictions on validation."


def _act_save(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.knobs is not None
    arguments: dict[str, Any] = {
        "paths": [FILE],
        "message": f"{m.agent} cycle {m.cycle}: {Knobs(**m.knobs).describe()}",
    }
    if m.base is not None:
        arguments["based_on"] = m.base["snapshot"]
    return arguments, "Saving the method as a snapshot."


def _act_catch_up(m: Memory) -> tuple[dict[str, Any], str]:
    return {"since": m.feed_cursor, "limit": 50}, "Catching up on the forum before deciding whether to submit."


def _act_submit(m: Memory) -> tuple[dict[str, Any], str]:
    return {"snapshot": m.snapshot, "entry_point": ENTRY}, "Submitting it for the official score."


def _act_post(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.knobs is not None
    knobs = Knobs(**m.knobs)
    lines = [f"Method: {knobs.describe()} ({m.change})."]
    if m.base is not None:
        lines.append(f"Builds on snapshot {m.base['snapshot']} by {m.base['author']} (post #{m.base['post']}).")
    if m.validation is not None:
        per_task = ", ".join(f"{task} {pgr:.2f}" for task, pgr in m.validation["tasks"].items())
        pooling = ", each weighed by its teacher-to-ceiling gap" if len(m.validation["tasks"]) > 1 else ""
        lines.append(f"Validation PGR {m.validation['pgr']:.2f} from {per_task}{pooling}.")
    else:
        lines.append(f"Could not score it: {m.run_note or 'no predictions'}.")
    if m.submission:
        lines.append(f"Snapshot: {m.snapshot}; submission: {m.submission} (official score to follow).")
    else:
        lines.append(f"Snapshot: {m.snapshot or 'none'}; not submitted ({m.submit_note or 'no score'}).")
    arguments: dict[str, Any] = {"body": "\n\n".join(lines), "tags": [Knobs(**m.knobs).base]}
    pgr = m.validation.get("pgr") if m.validation else None
    # A result must cite its submission (the forum checks): without one, it is a finding.
    arguments["kind"] = "result" if pgr is not None and m.submission else "finding"
    if pgr is not None:
        arguments["title"] = f"{knobs.describe()}: validation PGR {pgr:.2f} on {'+'.join(_validated_on(m))}"
    else:
        arguments["title"] = f"{knobs.describe()}: no score ({'+'.join(_validated_on(m))})"
    for key in ("snapshot", "submission"):
        if getattr(m, key):
            arguments[key] = getattr(m, key)
    return arguments, "Posting the result with its snapshot and submission."


def _act_check(m: Memory) -> tuple[dict[str, Any], str]:
    return {"submission_id": m.pending[0]["submission"]}, "Checking my submission's official score."


def _act_reply(m: Memory) -> tuple[dict[str, Any], str]:
    assert m.reply_to is not None
    r = m.reply_to
    body = (
        f"Official score of submission {r['submission']}: PGR {r['pgr']} (test split, mean over seeds and tasks)."
        if r["state"] == "done"
        else f"Submission {r['submission']} ended {r['state']}: {r.get('detail') or 'no detail'}."
    )
    return {"post_id": r["post"], "body": body}, "Reporting the official score under my post."


_PHASES: dict[str, tuple[str, Any]] = {
    "feed": ("forum__feed", _act_feed),
    "task_info": ("pgr__task_info", _act_task_info),
    "claim": ("forum__post", _act_claim),
    "load": ("sandbox__load_snapshot", _act_load),
    "read_base": ("sandbox__read_file", _act_read_base),
    "vote": ("forum__vote", _act_vote),
    "write": ("sandbox__write_file", _act_write),
    "run": ("sandbox__exec", _act_run),
    "read_predictions": ("sandbox__read_file", _act_read_predictions),
    "evaluate": ("pgr__evaluate_predictions", _act_evaluate),
    "save": ("sandbox__save_snapshot", _act_save),
    "catch_up": ("forum__feed", _act_catch_up),
    "submit": ("pgr__submit", _act_submit),
    "post": ("forum__post", _act_post),
    "check": ("pgr__submission", _act_check),
    "reply": ("forum__reply", _act_reply),
}


# --- observing ------------------------------------------------------------------------------------


def observe(memory: Memory, tool: str, text: str, is_error: bool, *, skipped: bool = False) -> None:
    """Move the state machine on with one tool result (or a skipped step)."""
    phase = memory.phase
    if phase not in _PHASES or _PHASES[phase][0] != tool:
        return  # not a step of this machine (e.g. a call the client refused): nothing learned
    memory.errors += is_error and not skipped
    data = None if is_error else _json(text)
    _ON[phase](memory, data, text if is_error else "")


def _after_orientation(m: Memory) -> None:
    m.phase = "task_info" if not m.task_info_seen else ("claim" if not m.claimed else "design")


def _read_feed(m: Memory, data: dict[str, Any]) -> None:
    """Note the team's results (posts citing a snapshot) from a feed page."""
    m.feed_cursor = int(data.get("next_cursor", m.feed_cursor))
    known = {r["post"] for r in m.results}
    for post in data.get("posts", []):
        if post.get("kind") in ("result", "finding") and post.get("snapshot") and post["id"] not in known:
            match = _PGR_IN_TITLE.search(post.get("title", ""))
            knobs = read_described(post.get("title", ""))
            m.results.append(
                {
                    "post": post["id"],
                    "author": post.get("author"),
                    "snapshot": post["snapshot"],
                    "pgr": float(match.group(1)) if match else None,
                    "knobs": asdict(knobs) if knobs else None,
                    "submitted": bool(post.get("submission")),
                }
            )


def _on_feed(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is not None:
        _read_feed(m, data)
        m.feed_pages += 1
        if data.get("has_more") and m.feed_pages < MAX_FEED_PAGES:
            return  # read on; more than a few pages per cycle would leave no time for research
    m.feed_pages = 0
    _after_orientation(m)


def _on_task_info(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is not None and data.get("ready") is False:
        return  # the scorer is still preparing: ask again next turn
    m.task_info_seen = True
    tasks = [task for task in (data or {}).get("tasks", []) if task.get("name")]
    names = [str(task["name"]) for task in tasks]
    if names:
        m.task = DEFAULT_TASK if DEFAULT_TASK in names else names[0]
        # The official score averages every task: a method that helps only the default one would be
        # chosen for noise. Where the teacher falls furthest below the ceiling, methods differ most.
        m.gaps = {str(task["name"]): task["acc_ceiling"] - task["acc_weak"] for task in tasks if "acc_weak" in task}
        widest = max(m.gaps, key=m.gaps.__getitem__, default=None)
        m.hardest = widest if widest != m.task else None
    _after_orientation(m)


def _validated_on(m: Memory) -> list[str]:
    """The tasks a method is validated on, in order; its validation PGR is their pooled PGR (`pooled`)."""
    return [m.task] + ([m.hardest] if m.hardest else [])


def pooled(scores: dict[str, float], gaps: dict[str, float]) -> float:
    """PGR over several tasks as the accuracy gained over the teacher, summed, divided by the gaps, summed.

    The plain mean of per-task PGR would let a task whose teacher is close to its ceiling decide:
    its PGR is a few examples divided by a small gap (on wordnet-living's 600 validation examples one
    step of the answer's accuracy grid is 0.26 PGR, on negation's 0.09). Pooling weighs each task by
    its gap, so a method is judged where it can be measured. Without gaps: the plain mean. Rounded
    to 0.01, as titles show it: two methods with the same answers tie with their posted results.
    """
    weights = {task: gaps.get(task, 0.0) for task in scores}
    total = sum(weights.values())
    if total <= 0 or min(weights.values()) <= 0:
        value = sum(scores.values()) / len(scores)
    else:
        value = sum(weights[task] * score for task, score in scores.items()) / total
    return round(value, 2)  # as posted: a teammate's result is compared at the precision it was posted with


def _scoring(m: Memory) -> str:
    """The task whose validation inputs the cycle runs and scores now."""
    return next((task for task in _validated_on(m) if task not in m.scores), m.task)


def _on_claim(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    m.claimed = True
    m.phase = "design"


def _on_load(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    assert m.base is not None
    m.tried_bases.append(m.base["snapshot"])
    if data is None:
        m.base = None
        m.knobs, m.change = asdict(Knobs(base=m.start)), f"the library's {m.start} (loading failed)"
        m.phase = "write"
    else:
        m.phase = "read_base"


def _on_read_base(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    assert m.base is not None
    knobs = read_knobs((data or {}).get("content", ""))
    if knobs is None:
        m.knobs, m.change = asdict(Knobs(base=m.start)), "my own start (the loaded method has no knobs I know)"
    else:
        m.knobs, m.change = _refine(m, knobs)
    m.phase = "vote" if m.base["author"] != m.agent else "write"


def _on_vote(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    m.phase = "write"


def _on_write(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    m.phase = "run" if data is not None else "feed"


def _on_run(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is not None and data.get("exit_code") == 0:
        m.phase = "read_predictions"
        return
    detail = (data or {}).get("error") or (data or {}).get("stderr") or error or "failed"
    m.run_note = str(detail).strip().splitlines()[-1][:300] if str(detail).strip() else "failed"
    m.phase = "save"


def _on_read_predictions(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    content = str((data or {}).get("content", "")).strip()
    if content and set(content) <= {"0", "1"}:
        m.predictions = content
        m.phase = "evaluate"
    else:
        m.run_note = "the runner wrote no predictions"
        m.phase = "save"


def _on_evaluate(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    m.predictions = None  # long; the snapshot and score are what matter from here
    if data is None or data.get("pgr") is None:
        if error:
            m.run_note = error.splitlines()[0][:300]
        m.phase = "save"
        return
    m.scores[_scoring(m)] = float(data["pgr"])
    m.fresh = m.fresh or not data.get("repeated", False)
    if len(m.scores) < len(_validated_on(m)):
        m.phase = "run"  # the next task's validation inputs
        return
    pgr = pooled(m.scores, m.gaps)
    m.validation = {"pgr": pgr, "tasks": dict(m.scores)}
    if m.best_validation is None or pgr > m.best_validation:
        before = m.best_knobs
        m.again = step_taken(Knobs(**before), Knobs(**m.knobs)) if before and m.knobs else None
        m.best_validation, m.best_knobs = pgr, m.knobs
    else:
        m.again = None
    m.phase = "save"


def _on_save(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is None:
        m.phase = "post"
        return
    m.snapshot = data.get("id")
    m.phase = "catch_up"


def _on_catch_up(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    """With what the team posted while this method ran, decide whether it is worth a submission."""
    if data is not None:
        _read_feed(m, data)
    m.submit_note = _worth_submitting(m)
    m.phase = "submit" if not m.submit_note else "post"


def _worth_submitting(m: Memory) -> str:
    """Why not to spend an official submission on this method ("" if it is worth one).

    Submissions are few: only a new method (its predictions not a near-copy of one the team
    validated before) that validates best in the whole team, and better than everything the team
    submitted before, is worth one (so each official score should rise).
    """
    pgr = (m.validation or {}).get("pgr")
    if pgr is None:
        return "no validation score"
    if m.submissions_closed:
        return "no submissions left"
    if m.knobs is None or Knobs(**m.knobs).pure:
        return "a library method as it is: its official score is in the baseline table"
    if not m.fresh:
        return "its predictions repeat a method the team validated before (the scorer gave that one's answer)"
    submitted = m.team_submitted_best
    if submitted is not None and pgr <= submitted:
        return f"validation PGR {pgr:.2f} does not beat the team's best submitted method ({submitted:.2f})"
    best = m.team_validated_best
    if best is not None and pgr < best:
        return f"validation PGR {pgr:.2f} is below the team's best ({best:.2f})"
    return ""


def _on_submit(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is not None and data.get("id"):
        m.submission = data["id"]
        m.submitted_best = (m.validation or {}).get("pgr")
    elif "budget" in error.lower() or "submissions" in error.lower():
        m.submissions_closed = True
    m.phase = "post"


def _on_post(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    if data is not None and m.submission:
        m.pending.append({"submission": m.submission, "post": data.get("id")})
    if data is not None and m.snapshot and m.validation is not None:
        m.results.append(
            {
                "post": data.get("id"),
                "author": m.agent,
                "snapshot": m.snapshot,
                "pgr": m.validation["pgr"],
                "knobs": m.knobs,
                "submitted": bool(m.submission),
            }
        )
    m.phase = "check" if m.pending else "feed"


def _on_check(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    entry = m.pending.pop(0)
    state = (data or {}).get("state")
    if state in FINAL_STATES:
        detail = (data or {}).get("error") or ", ".join(map(str, (data or {}).get("flags", [])))
        m.reply_to = {**entry, "state": state, "pgr": (data or {}).get("pgr_mean"), "detail": detail}
        m.phase = "reply" if entry.get("post") else "feed"
        return
    m.pending.append(entry)  # still queued or running (or unreachable): look again next cycle
    m.phase = "feed"


def _on_reply(m: Memory, data: dict[str, Any] | None, error: str) -> None:
    m.reply_to = None
    m.phase = "feed"


_ON = {
    "feed": _on_feed,
    "task_info": _on_task_info,
    "claim": _on_claim,
    "load": _on_load,
    "read_base": _on_read_base,
    "vote": _on_vote,
    "write": _on_write,
    "run": _on_run,
    "read_predictions": _on_read_predictions,
    "evaluate": _on_evaluate,
    "save": _on_save,
    "catch_up": _on_catch_up,
    "submit": _on_submit,
    "post": _on_post,
    "check": _on_check,
    "reply": _on_reply,
}


# --- answering ------------------------------------------------------------------------------------


def respond(agent: str, request: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The researcher's answer to one Messages API request: content blocks and a stop reason."""
    messages = request.get("messages", [])
    offered = {tool["name"] for tool in request.get("tools", [])}
    memory = replay(agent, messages, offered)
    if _asks_for_summary(messages) or not offered:
        return [{"type": "text", "text": summary(memory)}], "end_turn"
    action = decide(memory, offered)
    if action is None:
        return [{"type": "text", "text": "DONE"}], "end_turn"
    tool, arguments, why = action
    digest = hashlib.sha256(f"{agent}:{len(messages)}:{memory.phase}:{memory.cycle}".encode()).hexdigest()[:24]
    return [
        {"type": "text", "text": why},
        {"type": "tool_use", "id": f"toolu_{digest}", "name": tool, "input": arguments},
    ], "tool_use"


def _asks_for_summary(messages: list[dict[str, Any]]) -> bool:
    """Whether the client asks for the notes that replace the conversation (see client.compaction)."""
    last = messages[-1] if messages else {}
    content = last.get("content") if last.get("role") == "user" else None
    return isinstance(content, list) and any(block.get("text") == SUMMARY_REQUEST for block in content)


def summary(memory: Memory) -> str:
    """Notes for a compacted conversation; the last line lets `replay` pick up exactly here."""
    best = f"{memory.best_validation:.2f}" if memory.best_validation is not None else "none yet"
    return (
        f"I am {memory.agent}; direction: {memory.direction}. Cycle {memory.cycle}, now at step {memory.phase}. "
        f"Best validation PGR {best}; {len(memory.pending)} submission(s) awaiting scores; "
        f"{len(memory.results)} results seen on the forum.\n{MEMORY_MARK}{json.dumps(asdict(memory))}"
    )
