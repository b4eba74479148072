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
from pathlib import Path

from servers.w2s.wordnet import LEXFILES, Row, read_lemmas, wordnet_pair, write_rows

__all__ = ["SECRET_POOL", "derive_secret_tasks"]

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


def _write(folder: Path, family: str, rows: list[Row]) -> None:
    target = folder / family
    staging = folder / f".{family}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    write_rows(staging / "data.jsonl.gz", rows)
    (staging / "task.toml").write_text(_toml(family))
    try:
        staging.rename(target)
    except OSError:  # another server process derived it first
        shutil.rmtree(staging, ignore_errors=True)


def derive_secret_tasks(folder: Path, *, wordnet: Path = WORDNET, rng: random.Random | None = None) -> bool:
    """Write the secret packs into ``folder`` unless they are there; False if WordNet is missing.

    ``rng`` is for tests (a fixed choice); by default the choice comes from the OS's secure source.
    """
    if all((folder / family / "task.toml").is_file() for family in ("wordnet-category", "negation")):
        return True
    if not (wordnet / "data.noun").is_file():
        logger.warning("no WordNet at %s: no secret transfer tasks (install wordnet-base)", wordnet)
        return False
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    chooser = rng or secrets.SystemRandom()
    a, b, c, d, e, f = (f"noun.{name}" for name in chooser.sample(SECRET_POOL, 6))
    seed = chooser.randrange(2**31)
    if not (folder / "wordnet-category" / "task.toml").is_file():
        _write(folder, "wordnet-category", wordnet_pair(wordnet, [a, b], [c, d], per_class=PER_CLASS, sample_seed=seed))
    if not (folder / "negation" / "task.toml").is_file():
        _write(folder, "negation", negated_membership(wordnet, e, f, random.Random(seed)))
    logger.info("derived the secret transfer tasks in %s", folder)
    return True
