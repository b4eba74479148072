"""WordNet 3.0 (Debian's ``wordnet-base``) as labelled word lists: what the WordNet task packs are made of.

Used by ``scripts/derive_tasks.py`` for the shipped packs and by the PGR server for its secret
transfer task. Output is deterministic for a given sampling seed.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import random
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LEXFILES", "NOUN_LEXFILES", "Row", "read_lemmas", "wordnet_licence", "wordnet_pair", "write_rows"]

logger = logging.getLogger(__name__)

LICENCE_SOURCE = Path("/usr/share/doc/wordnet-base/copyright")
SAMPLE_SEED = 0

NOUN_LEXFILES = {
    name: number
    for number, name in enumerate(
        [
            "Tops",
            "act",
            "animal",
            "artifact",
            "attribute",
            "body",
            "cognition",
            "communication",
            "event",
            "feeling",
            "food",
            "group",
            "location",
            "motive",
            "object",
            "person",
            "phenomenon",
            "plant",
            "possession",
            "process",
            "quantity",
            "relation",
            "shape",
            "state",
            "substance",
            "time",
        ],
        start=3,
    )
}
"""WordNet's noun lexicographer files (lexnames(5WN)): name without 'noun.' -> file number."""

LEXFILES = {f"noun.{name}": number for name, number in NOUN_LEXFILES.items()}
"""The same, keyed 'noun.NAME'."""

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


def wordnet_pair(
    wordnet: Path, positive: list[str], negative: list[str], per_class: int = 3000, sample_seed: int = SAMPLE_SEED
) -> list[Row]:
    """Label 1 for lemmas of the positive files, 0 for the negative; lemmas in both are dropped."""
    pos = read_lemmas(wordnet / "data.noun", (LEXFILES[n] for n in positive))
    neg = read_lemmas(wordnet / "data.noun", (LEXFILES[n] for n in negative))
    both = pos & neg
    rng = random.Random(sample_seed)
    rows: list[Row] = []
    for label, lemmas in ((1, pos - both), (0, neg - both)):
        ordered = sorted(lemmas)
        rows += [(text, label) for text in rng.sample(ordered, min(per_class, len(ordered)))]
    rng.shuffle(rows)
    logger.info("%s vs %s: %d rows (%d lemmas in both dropped)", positive, negative, len(rows), len(both))
    return rows


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
