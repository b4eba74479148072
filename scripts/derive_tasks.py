"""Derive the W2S task packs' data files, once, so machines without WordNet can run the testbed.

Reads WordNet 3.0 (Debian's ``wordnet-base``, /usr/share/wordnet) and writes gzip'd JSONL rows
``{"text": ..., "label": 0|1}`` into ``servers/pgr/tasks/<name>/data.jsonl.gz``, plus WordNet's
licence next to every WordNet-derived file. The output is byte-for-byte deterministic.

    .venv/bin/python scripts/derive_tasks.py [--wordnet /usr/share/wordnet] [--out servers/pgr/tasks]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path

logger = logging.getLogger("derive_tasks")

ROOT = Path(__file__).resolve().parents[1]
LICENCE_SOURCE = Path("/usr/share/doc/wordnet-base/copyright")
SAMPLE_SEED = 0

# WordNet's lexicographer file numbers (lexnames(5WN)).
LEXFILES = {
    "noun.act": 4,
    "noun.animal": 5,
    "noun.artifact": 6,
    "noun.food": 13,
    "noun.object": 17,
    "noun.plant": 20,
    "noun.state": 26,
    "noun.substance": 27,
}

Row = tuple[str, int]


def read_lemmas(data_file: Path, lexfiles: Iterable[int]) -> set[str]:
    """Lowercase lemmas (underscores as spaces) of the synsets in the given lexicographer files."""
    wanted = set(lexfiles)
    lemmas: set[str] = set()
    with data_file.open(encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(" "):  # licence header
                continue
            fields = line.split()
            if int(fields[1]) not in wanted:
                continue
            for i in range(int(fields[3], 16)):
                word = fields[4 + 2 * i]
                if word == word.lower():
                    lemmas.add(word.replace("_", " "))
    return lemmas


def wordnet_pair(wordnet: Path, positive: list[str], negative: list[str], per_class: int = 3000) -> list[Row]:
    """Label 1 for lemmas of the positive files, 0 for the negative; lemmas in both are dropped."""
    pos = read_lemmas(wordnet / "data.noun", (LEXFILES[n] for n in positive))
    neg = read_lemmas(wordnet / "data.noun", (LEXFILES[n] for n in negative))
    both = pos & neg
    rng = random.Random(SAMPLE_SEED)
    rows: list[Row] = []
    for label, lemmas in ((1, pos - both), (0, neg - both)):
        ordered = sorted(lemmas)
        rows += [(text, label) for text in rng.sample(ordered, min(per_class, len(ordered)))]
    rng.shuffle(rows)
    logger.info("%s vs %s: %d rows (%d lemmas in both dropped)", positive, negative, len(rows), len(both))
    return rows


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
    "negation": (False, lambda wn: negation_sentences()),
}
"""Task name -> (derived from WordNet, row builder)."""


def write_rows(path: Path, rows: list[Row]) -> None:
    """Deterministic gzip'd JSONL (no timestamp in the gzip header)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as handle:
        for text, label in rows:
            handle.write((json.dumps({"text": text, "label": label}) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def wordnet_licence(source: Path = LICENCE_SOURCE) -> str:
    """The WordNet 3.0 licence paragraph of the Debian copyright file, as plain text."""
    text = source.read_text(encoding="utf-8")
    match = re.search(r"^License: WordNet3\.0\n((?: .*\n)+)", text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"no 'License: WordNet3.0' paragraph in {source}")
    lines = [line[1:] for line in match.group(1).splitlines()]
    return "\n".join("" if line == "." else line for line in lines) + "\n"


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
