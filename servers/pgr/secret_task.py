"""The secret transfer tasks: tasks no agent can see, so knowledge of the public tasks does not carry.

By default the server derives one secret task per public task family on its first start, from a
secret random choice of WordNet words that no shipped pack uses, and keeps them in its private
data directory: not even the source code says which.

* ``category`` (family ``wordnet-category``): lemmas of noun categories {A, B} against {C, D};
* ``negation`` (family ``negation``): "the NOUN was (not) ADJ", praise (1) or criticism (0), the
  label flipped by a negator, as in the public ``negation`` task, over a secret choice of WordNet
  adjective antonym pairs and of subject nouns: the same systematic teacher error (a bag of words
  cannot see the flip) over a vocabulary no one chose.

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
from functools import cache
from pathlib import Path

from servers.w2s.encoders import EncoderSpec, load_encoder
from servers.w2s.tasks import list_tasks, load_task
from servers.w2s.wordnet import LEXFILES, Row, antonym_pairs, read_lemmas, wordnet_pair, write_rows

__all__ = ["MIN_GAP", "MIN_TEACHER", "SECRET_FAMILIES", "SECRET_POOL", "DrawCheck", "Fitness", "derive_secret_tasks"]

logger = logging.getLogger(__name__)

WORDNET = Path("/usr/share/wordnet")
SECRET_POOL = (
    "attribute", "body", "cognition", "communication", "event", "group",
    "location", "person", "possession", "quantity", "phenomenon", "time",
)  # fmt: skip
"""Noun categories with over 1,000 lemmas that no shipped pack uses; the secret tasks draw five."""
PER_CLASS = 1500
EVALUATIVE_PAIRS = 70
"""The adjective antonym pairs that the strong model's praise axis tells apart most clearly: further
down the list, pairs stop being praise against criticism (active/passive, maximal/minimal), and a
linear head on the frozen features no longer learns the task (ceiling 0.77-0.83 with 300 pairs,
0.84-0.89 with 70; 0.52-0.63 with pairs of no common polarity)."""
DRAWN_PAIRS = 40
SUBJECTS = 40
"""Per negation draw: adjective pairs and subject nouns, as many as the public negation task has."""
NEGATION_ROWS = 6000
"""As many as the public negation task: with 3,000 rows the frozen ceiling reached 0.84-0.89, with
6,000 0.90-0.92 (public 0.94), and the library's methods score as they do on the public task."""
VERBS = ("was", "is", "seemed", "looked", "felt")
NEGATORS = ("not", "never", "hardly")
NEGATED = 0.3
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


NEGATION_RECIPE = (
    RECIPE.replace("ngram_max = 2", "ngram_max = 1").replace(  # unigrams: a bigram "not good" would see the flip
        "epochs = 2\nlr = 2e-4", "epochs = 20\nlr = 1e-3"
    )  # the public negation task's head recipe
)
RECIPES = {"wordnet-category": RECIPE, "negation": NEGATION_RECIPE}


def _toml(family: str) -> str:
    return (
        f'name = "{family}"\nfamily = "{family}"\ndata = ["data.jsonl.gz"]\n'
        'description = "A secret transfer task (see servers/pgr/secret_task.py); no one knows its words."\n'
        + RECIPES[family]
    )


@cache
def evaluative_pairs(wordnet: Path) -> list[tuple[str, str]]:
    """WordNet's adjective antonym pairs as (praise, criticism), the `EVALUATIVE_PAIRS` clearest.

    Each pair is oriented by the strong model's own praise axis ("it was good" minus "it was bad"),
    so that the task is praise against criticism like the public negation task; no adjective of a
    shipped pack is used.
    """
    shipped = {word for name in list_tasks() for text in load_task(name).texts for word in text.split()}
    pairs = [pair for pair in antonym_pairs(wordnet / "data.adj") if not shipped.intersection(pair)]
    encoder = load_encoder(EncoderSpec(kind="minilm-frozen", max_length=16, batch_size=512))
    good, bad = encoder.embed(["it was good", "it was bad"])
    words = sorted({word for pair in pairs for word in pair})
    praise = dict(zip(words, encoder.embed([f"it was {word}" for word in words]) @ (good - bad), strict=True))
    clearest = sorted(pairs, key=lambda pair: -abs(praise[pair[0]] - praise[pair[1]]))[:EVALUATIVE_PAIRS]
    return [(a, b) if praise[a] > praise[b] else (b, a) for a, b in clearest]


def negated_polarity(wordnet: Path, subjects: str, rng: random.Random) -> list[Row]:
    """Sentences "the NOUN VERB [NEGATOR] ADJ": label 1 for praise not negated or criticism negated."""
    adjectives = [
        (word, praise) for pair in rng.sample(evaluative_pairs(wordnet), DRAWN_PAIRS)
        for word, praise in zip(pair, (1, 0), strict=True)
    ]  # fmt: skip
    nouns = rng.sample(
        sorted(w for w in read_lemmas(wordnet / "data.noun", [LEXFILES[subjects]]) if w.isalpha()), SUBJECTS
    )
    rows: list[Row] = []
    seen: set[str] = set()
    while len(rows) < NEGATION_ROWS:
        adjective, praise = rng.choice(adjectives)
        negated = rng.random() < NEGATED
        text = " ".join(
            ["the", rng.choice(nouns), rng.choice(VERBS), *([rng.choice(NEGATORS)] if negated else []), adjective]
        )
        if text not in seen:
            seen.add(text)
            rows.append((text, int(bool(praise) != negated)))
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
    a, b, c, d, e = (f"noun.{name}" for name in chooser.sample(SECRET_POOL, 5))
    seed = chooser.randrange(2**31)
    draws: dict[str, Callable[[list[str], int], list[Row]]] = {
        "wordnet-category": lambda kinds, at: wordnet_pair(
            wordnet, kinds[:2], kinds[2:], per_class=PER_CLASS, sample_seed=at
        ),
        "negation": lambda kinds, at: negated_polarity(wordnet, kinds[0], random.Random(at)),
    }
    first = {"wordnet-category": [a, b, c, d], "negation": [e]}
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
