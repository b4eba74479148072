"""The check at submit: a snapshot may not carry hidden test inputs, or validation inputs with labels.

A method's code is text; so are word lists, lookup tables and pasted data. The check reads every
file of the snapshot that decodes as UTF-8, lowercases it, and looks up each run of up to
``MAX_WORDS`` words in each task's set of hidden test texts (and validation texts on lines that
also hold a label-like token). Ordinary code and prose mention a few task words by chance
("model", "state"); ``TEST_LIMIT`` and ``VALIDATION_LIMIT`` sit well above what the repository's
own source holds (tests/pgr measures it). What this does not see, encoded or compressed data, is
what the secret transfer task is for (docs/integrity.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_WORDS", "TEST_LIMIT", "VALIDATION_LIMIT", "Finding", "find_smuggled"]

MAX_WORDS = 8
TEST_LIMIT = 40
"""Distinct hidden test texts of one task a snapshot may contain."""
VALIDATION_LIMIT = 40
"""Distinct validation texts of one task a snapshot may pair with a label-like token on one line."""
SCAN_BYTES = 20 * 1024 * 1024

WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
LABEL_TOKEN = re.compile(r"(?<![\w.])(?:0|1|true|false|pos|neg|positive|negative|yes|no)(?![\w.])")


@dataclass(frozen=True)
class Finding:
    """A task whose hidden texts a snapshot holds too many of."""

    task: str
    kind: str
    count: int
    examples: tuple[str, ...]


def _phrases(words: list[str]) -> set[str]:
    return {" ".join(words[i : i + n]) for n in range(1, MAX_WORDS + 1) for i in range(len(words) - n + 1)}


def _normal(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


def find_smuggled(
    files: Mapping[str, bytes], test_texts: Mapping[str, frozenset[str]], validation_texts: Mapping[str, frozenset[str]]
) -> list[Finding]:
    """Tasks whose test texts (or labelled validation texts) the snapshot holds beyond the limits."""
    phrases: set[str] = set()
    labelled: set[str] = set()
    budget = SCAN_BYTES
    for content in files.values():
        if budget <= 0:
            break
        try:
            text = content[:budget].decode("utf-8")
        except UnicodeDecodeError:
            continue
        budget -= len(content)
        for line in text.lower().splitlines():
            words = WORD.findall(line)
            found = _phrases(words)
            phrases |= found
            if LABEL_TOKEN.search(line):
                labelled |= found
    findings = []
    for kind, texts_by_task, seen, limit in (
        ("hidden test inputs", test_texts, phrases, TEST_LIMIT),
        ("validation inputs paired with labels", validation_texts, labelled, VALIDATION_LIMIT),
    ):
        for task, texts in texts_by_task.items():
            hits = sorted({text for text in texts if _normal(text) in seen})
            if len(hits) > limit:
                findings.append(Finding(task, kind, len(hits), tuple(hits[:3])))
    return findings
