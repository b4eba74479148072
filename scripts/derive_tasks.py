"""Derive the W2S task packs' data files, once, so machines without WordNet can run the testbed.

Reads WordNet 3.0 (Debian's ``wordnet-base``, /usr/share/wordnet) and writes gzip'd JSONL rows
``{"text": ..., "label": 0|1}`` into ``servers/pgr/tasks/<name>/data.jsonl.gz``, plus WordNet's
licence next to every WordNet-derived file. The output is byte-for-byte deterministic.

    .venv/bin/python scripts/derive_tasks.py [--wordnet /usr/share/wordnet] [--out servers/pgr/tasks]
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Callable
from pathlib import Path

from servers.w2s.wordnet import SAMPLE_SEED, Row, wordnet_licence, wordnet_pair, write_rows

logger = logging.getLogger("derive_tasks")

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = (
    "the movie", "the service", "the hotel room", "the meal", "the concert", "our guide", "the new phone",
    "the book", "the lecture", "the app", "the coffee", "the weather", "the neighbourhood", "the staff",
    "the game", "the flight", "the car", "the museum", "the show", "the class", "the interview",
    "the party", "the update", "the beach", "the restaurant", "the playlist", "the haircut", "the bakery",
    "the trip", "the hike", "the camera", "the lamp", "the jacket", "the sofa", "the podcast",
    "the exhibit", "the team", "the landlord", "the recipe", "the train ride",
)  # fmt: skip
VERBS = ("was", "is", "seemed", "felt", "looked", "sounded")
NEGATORS = ("not", "never", "hardly", "no longer")
POSITIVE = (
    "good", "great", "excellent", "wonderful", "pleasant", "delightful", "superb", "enjoyable", "friendly",
    "helpful", "charming", "impressive", "lovely", "fantastic", "brilliant", "comfortable", "clean",
    "fresh", "reliable", "elegant", "fun", "satisfying", "beautiful", "tasty", "generous", "polite",
    "efficient", "inspiring", "amazing", "cheerful", "cozy", "smooth", "graceful", "thoughtful",
    "rewarding", "peaceful", "welcoming", "splendid", "marvellous", "pleasing",
)  # fmt: skip
NEGATIVE = (
    "bad", "awful", "terrible", "horrible", "unpleasant", "dreadful", "boring", "rude", "dirty",
    "disappointing", "poor", "mediocre", "annoying", "useless", "ugly", "noisy", "uncomfortable",
    "broken", "slow", "bland", "stale", "frustrating", "confusing", "miserable", "gloomy", "tedious",
    "clumsy", "sloppy", "harsh", "messy", "shabby", "dull", "flimsy", "awkward", "grim", "lousy",
    "greasy", "unreliable", "painful", "depressing",
)  # fmt: skip


def negation_sentences(n: int = 6000, negated_fraction: float = 0.3) -> list[Row]:
    """Short reviews whose label (1 = praise) flips when a negator precedes the adjective.

    Polarity and negation are independent, so a bag of words (unigrams) cannot represent the
    flip: it is right on plain sentences and wrong on every negated one, a systematic error the
    student can easily learn to copy. A contextual encoder does see "not good" as a unit.
    """
    rng = random.Random(SAMPLE_SEED)
    seen: set[str] = set()
    rows: list[Row] = []
    for _ in range(n):
        praise = rng.random() < 0.5
        negated = rng.random() < negated_fraction
        text = ""
        while not text or text in seen:
            negator = [rng.choice(NEGATORS)] if negated else []
            adjective = rng.choice(POSITIVE if praise else NEGATIVE)
            text = " ".join([rng.choice(SUBJECTS), rng.choice(VERBS), *negator, adjective])
        seen.add(text)
        rows.append((text, int(praise != negated)))
    return rows


TASKS: dict[str, tuple[bool, Callable[[Path], list[Row]]]] = {
    "wordnet-living": (
        True,
        lambda wn: wordnet_pair(
            wn, ["noun.animal", "noun.plant"], ["noun.artifact", "noun.food", "noun.substance", "noun.object"]
        ),
    ),
    "wordnet-act-state": (True, lambda wn: wordnet_pair(wn, ["noun.act"], ["noun.state"])),
    "wordnet-food-substance": (True, lambda wn: wordnet_pair(wn, ["noun.food"], ["noun.substance"])),
    "negation": (False, lambda wn: negation_sentences()),
}
"""Task name -> (derived from WordNet, row builder)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=ROOT / "servers" / "pgr" / "tasks")
    parser.add_argument("tasks", nargs="*", default=sorted(TASKS), help="task names (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    for name in args.tasks:
        from_wordnet, build = TASKS[name]
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = build(args.wordnet)
        write_rows(folder / "data.jsonl.gz", rows)
        if from_wordnet:
            (folder / "WORDNET-LICENSE").write_text(
                "The data in this folder is derived from WordNet 3.0.\n\n" + wordnet_licence(), encoding="utf-8"
            )
        logger.info("wrote %s (%d rows)", folder / "data.jsonl.gz", len(rows))


if __name__ == "__main__":
    main()
