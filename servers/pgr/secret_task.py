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
from dataclasses import dataclass
from pathlib import Path

from servers.w2s.wordnet import LEXFILES, Row, read_lemmas, wordnet_pair, write_rows

__all__ = ["MIN_GAP", "MIN_TEACHER", "SECRET_FAMILIES", "SECRET_POOL", "DrawCheck", "Fitness", "derive_secret_tasks"]

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
"""The least lead of a secret task's ceiling over its teacher (test accuracy) that a draw must have on every seed."""
MIN_TEACHER = 0.65
"""The least test accuracy of a secret task's teacher on every seed: the weakest public task's teacher
(wordnet-act-state) scores 0.64-0.66. From a teacher near chance (some draws' score 0.54-0.60) a
method's PGR swings by 0.3-0.4 from seed to seed and the controls judge noise."""
ATTEMPTS = 16
"""Draws per family at most: a draw costs a second to eight (its texts embedded once); about one
negation draw in five is fit."""


@dataclass(frozen=True)
class Fitness:
    """How well a drawn pack can measure PGR, at its worst seed of those scored."""

    teacher: float
    """The weak teacher's lowest test accuracy."""
    lead: float | None
    """The ceiling's lowest lead over the teacher in test accuracy; None when not measured (the
    teacher is already under `MIN_TEACHER`, and measuring the lead means embedding every text)."""

    @property
    def fit(self) -> bool:
        return self.teacher >= MIN_TEACHER and self.lead is not None and self.lead >= MIN_GAP

    def rank(self) -> tuple[bool, bool, float]:
        """Orders draws for keeping one: fit first, then any whose teacher passes (by lead), then the rest."""
        return (self.fit, self.lead is not None, self.teacher if self.lead is None else self.lead)

    def __str__(self) -> str:
        lead = "not measured" if self.lead is None else f"{self.lead:.3f}"
        return f"teacher accuracy {self.teacher:.3f}, ceiling lead {lead}"


DrawCheck = Callable[[Path], Fitness]
"""A staged pack's folder -> its `Fitness`."""

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
    folder: Path, *, wordnet: Path = WORDNET, rng: random.Random | None = None, check: DrawCheck | None = None
) -> bool:
    """Write the secret packs into ``folder`` unless they are there; False if WordNet is missing.

    With ``check``, a draw that is not `Fitness.fit` (its teacher near chance, or its ceiling barely
    ahead of the teacher) is drawn again, up to ``ATTEMPTS`` times, keeping the best by
    `Fitness.rank` if none is fit: on a gap near zero PGR divides noise by almost nothing (one such
    draw scored -3, which swung the official mean of every submission). ``rng`` is for tests (a
    fixed choice); by default the choice comes from the OS's secure source.
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
        if check is None:
            _publish(_stage(folder, family, draw(kinds, draw_seed)), folder / family)
            continue
        drafts: list[tuple[Fitness, Path]] = []  # (fitness, staged pack) of each draw
        for attempt in range(1, ATTEMPTS + 1):
            staging = _stage(folder, family, draw(kinds, draw_seed))
            drafts.append((check(staging), staging))
            if drafts[-1][0].fit:
                break
            logger.info("secret %s task, draw %d: %s; drawing again", family, attempt, drafts[-1][0])
            kinds, draw_seed = chooser.sample(pool, len(kinds)), chooser.randrange(2**31)
        best, kept = max(drafts, key=lambda draft: draft[0].rank())
        if not best.fit:
            logger.warning(
                "no secret %s task had a teacher of %.2f test accuracy and a ceiling %.2f ahead of it on every seed;"
                " keeping the best draw (%s)", family, MIN_TEACHER, MIN_GAP, best,
            )  # fmt: skip
        for _, staging in drafts:
            if staging != kept:
                shutil.rmtree(staging, ignore_errors=True)
        _publish(kept, folder / family)
    logger.info("derived the secret transfer tasks in %s", folder)
    return True
