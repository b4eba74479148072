"""The secret transfer tasks: tasks no agent can see, so knowledge of the public tasks does not carry.

By default the server derives one secret task per public task family on its first start, from a
secret random choice of WordNet noun categories that no shipped pack uses, and keeps them in its
private data directory: not even the source code says which.

* ``category`` (family ``wordnet-category``): lemmas of categories {A, B} against {C, D};
* ``negation`` (family ``negation``): "it was (not) a NOUN", praise-like label 1 when the noun is
  of category E and the sentence is not negated, or of category F and negated: the same
  systematic teacher error as the public ``negation`` task, over a vocabulary no one chose.

An operator may point ``AAR_PGR_SECRET_TASKS_DIR`` at task packs of their own instead (each with a
``family``). Agents see only how many secret tasks exist and their PGR, under opaque names.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from servers.w2s.wordnet import LEXFILES, Row, read_lemmas, wordnet_pair, write_rows

__all__ = ["GAP_SEEDS", "MIN_GAP", "SECRET_FAMILIES", "SECRET_POOL", "Gap", "derive_secret_tasks"]

logger = logging.getLogger(__name__)

WORDNET = Path("/usr/share/wordnet")
SECRET_POOL = (
    "attribute", "body", "cognition", "communication", "event", "group",
    "location", "person", "possession", "quantity", "phenomenon", "time",
)  # fmt: skip
"""Noun categories with over 1,000 lemmas that no shipped pack uses; the secret tasks draw six."""
PER_CLASS = 1500
FRAMES = ("it was", "this is", "that was", "they called it", "she found", "he saw", "we met", "you chose")
NEGATORS = ("not", "never", "hardly")
SECRET_FAMILIES = ("wordnet-category", "negation")
MIN_GAP = 0.06
"""The least lead of a secret task's ceiling over its teacher (test accuracy, see `Gap`) that a draw must have."""
GAP_SEEDS = (0, 1, 2)
"""The seeds whose test split a draw's gap is the mean over."""
ATTEMPTS = 8
Gap = Callable[[Path], float]
"""A pack's folder -> how far the strong model trained on ground truth beats the weak teacher."""

RECIPE = """
[weak]
kind = "tfidf-logistic"
ngram_max = 2
max_features = 5000

[strong]
kind = "minilm-frozen"
max_length = 32
batch_size = 512
dtype = "float32"

[recipe]
epochs = 2
lr = 2e-4
batch_size = 32

[recipe.finetune]
epochs = 2
lr = 5e-5
batch_size = 32
"""


def _toml(family: str) -> str:
    return (
        f'name = "{family}"\nfamily = "{family}"\ndata = ["data.jsonl.gz"]\n'
        'description = "A secret transfer task (see servers/pgr/secret_task.py); no one knows its categories."\n'
        + RECIPE
    )


def negated_membership(wordnet: Path, positive: str, negative: str, rng: random.Random) -> list[Row]:
    """Sentences "FRAME [NEGATOR] a NOUN": label 1 for a positive noun not negated or a negative one negated."""
    pos = read_lemmas(wordnet / "data.noun", [LEXFILES[positive]])
    neg = read_lemmas(wordnet / "data.noun", [LEXFILES[negative]])
    nouns = [(noun, 1) for noun in sorted(pos - neg)] + [(noun, 0) for noun in sorted(neg - pos)]
    rows: list[Row] = []
    seen: set[str] = set()
    while len(rows) < 2 * PER_CLASS:
        noun, member = rng.choice(nouns)
        negated = rng.random() < 0.3
        article = "an" if noun[0] in "aeiou" else "a"
        text = " ".join([rng.choice(FRAMES), *([rng.choice(NEGATORS)] if negated else []), article, noun])
        if text not in seen:
            seen.add(text)
            rows.append((text, int(bool(member) != negated)))
    return rows


def _stage(folder: Path, family: str, rows: list[Row]) -> Path:
    """The pack of `rows` in a hidden staging folder beside its final place."""
    staging = folder / f".{family}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    write_rows(staging / "data.jsonl.gz", rows)
    (staging / "task.toml").write_text(_toml(family))
    return staging


def _publish(staging: Path, target: Path) -> None:
    try:
        staging.rename(target)
    except OSError:  # another server process derived it first
        shutil.rmtree(staging, ignore_errors=True)


def derive_secret_tasks(
    folder: Path, *, wordnet: Path = WORDNET, rng: random.Random | None = None, gap: Gap | None = None
) -> bool:
    """Write the secret packs into ``folder`` unless they are there; False if WordNet is missing.

    With ``gap`` (a pack's folder -> its ceiling's lead over the teacher), a draw whose gap is under
    ``MIN_GAP`` is drawn again, up to ``ATTEMPTS`` times, keeping the widest if none reaches it: on a
    gap near zero PGR divides noise by almost nothing (one such draw scored -3, which swung the
    official mean of every submission). ``rng`` is for tests (a fixed choice); by default the choice
    comes from the OS's secure source.
    """
    if all((folder / family / "task.toml").is_file() for family in SECRET_FAMILIES):
        return True
    if not (wordnet / "data.noun").is_file():
        logger.warning("no WordNet at %s: no secret transfer tasks (install wordnet-base)", wordnet)
        return False
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    chooser = rng or secrets.SystemRandom()
    a, b, c, d, e, f = (f"noun.{name}" for name in chooser.sample(SECRET_POOL, 6))
    seed = chooser.randrange(2**31)
    draws: dict[str, Callable[[list[str], int], list[Row]]] = {
        "wordnet-category": lambda kinds, at: wordnet_pair(
            wordnet, kinds[:2], kinds[2:], per_class=PER_CLASS, sample_seed=at
        ),
        "negation": lambda kinds, at: negated_membership(wordnet, kinds[0], kinds[1], random.Random(at)),
    }
    first = {"wordnet-category": [a, b, c, d], "negation": [e, f]}
    for family, draw in draws.items():
        if (folder / family / "task.toml").is_file():
            continue
        taken = {kind for other, kinds in first.items() if other != family for kind in kinds}
        pool = [f"noun.{name}" for name in SECRET_POOL if f"noun.{name}" not in taken]
        kinds, draw_seed = first[family], seed
        drafts: list[tuple[float, Path]] = []  # (gap, staged pack) of each draw
        for attempt in range(1, ATTEMPTS + 1):
            staging = _stage(folder, family, draw(kinds, draw_seed))
            drafts.append((gap(staging) if gap else MIN_GAP, staging))
            if drafts[-1][0] >= MIN_GAP:
                break
            logger.info(
                "secret %s task, draw %d: gap %.3f under %.2f; drawing again", family, attempt, drafts[-1][0], MIN_GAP
            )
            kinds, draw_seed = chooser.sample(pool, len(kinds)), chooser.randrange(2**31)
        widest, kept = max(drafts, key=lambda draft: draft[0])  # the accepted draw, if any, is the widest
        if widest < MIN_GAP:
            logger.warning(
                "no secret %s task reached a gap of %.2f; keeping the widest (%.3f)", family, MIN_GAP, widest
            )
        for _, staging in drafts:
            if staging != kept:
                shutil.rmtree(staging, ignore_errors=True)
        _publish(kept, folder / family)
    logger.info("derived the secret transfer tasks in %s", folder)
    return True
