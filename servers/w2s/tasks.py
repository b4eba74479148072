"""Task packs: a folder ``servers/pgr/tasks/<name>/`` with ``task.toml`` and labelled data files.

Tasks are data, not code. ``task.toml`` names the data files (gzip'd or plain JSONL / CSV with
``text`` and ``label`` columns), the split fractions, the weak and strong model specs and the
training recipe; see ``servers/pgr/tasks/wordnet-living/task.toml`` for every field. Model paths
may be absolute or relative to the pack folder.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import tomllib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from servers.w2s.api import FinetuneRecipe, HeadRecipe
from servers.w2s.encoders import ENCODER_KINDS, EncoderSpec
from servers.w2s.splits import SplitFractions
from servers.w2s.weak import TfidfSpec, WeakSpec

__all__ = ["Task", "TaskSpec", "default_tasks_root", "list_tasks", "load_task"]


def default_tasks_root() -> Path:
    """``servers/pgr/tasks`` in this checkout."""
    return Path(__file__).resolve().parents[1] / "pgr" / "tasks"


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """Everything ``task.toml`` declares."""

    name: str
    description: str
    family: str
    """Tasks of one family test one skill; the secret transfer task of a family checks its public ones."""
    folder: Path
    data_files: tuple[str, ...]
    fractions: SplitFractions
    weak: WeakSpec
    strong: EncoderSpec
    head: HeadRecipe
    finetune: FinetuneRecipe


@dataclass(frozen=True, kw_only=True, eq=False)
class Task:
    """A loaded task: its spec, texts, 0/1 labels and a hash of the data bytes (for cache keys).

    ``strata`` are the labels its splits are stratified by: the task's own, except for a control
    task that relabels another one's texts and must keep that task's splits exactly.
    """

    spec: TaskSpec
    texts: tuple[str, ...]
    labels: np.ndarray
    data_hash: str
    strata: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def renamed(self, name: str) -> Task:
        """This task under another name (its data, and so its cache entries, unchanged): two packs may
        share a name, and a secret pack's name may say what it is about."""
        return replace(self, spec=replace(self.spec, name=name))

    @property
    def split_labels(self) -> np.ndarray:
        return self.labels if self.strata is None else self.strata

    @cached_property
    def texts_hash(self) -> str:
        """A hash of the texts alone: features depend on nothing else."""
        return hashlib.sha256("\x00".join(self.texts).encode("utf-8")).hexdigest()


def _model_path(folder: Path, table: dict[str, Any]) -> dict[str, Any]:
    if "path" in table:
        path = Path(table["path"]).expanduser()
        table = {**table, "path": str(path if path.is_absolute() else (folder / path).resolve())}
    return table


def _weak_spec(folder: Path, table: dict[str, Any]) -> WeakSpec:
    if table.get("kind") in ENCODER_KINDS:
        return EncoderSpec(**_model_path(folder, table))
    if table.get("kind", "tfidf-logistic") == "tfidf-logistic":
        return TfidfSpec(**table)
    raise ValueError(f"unknown weak model kind {table.get('kind')!r}")


def _read_spec(folder: Path) -> TaskSpec:
    with (folder / "task.toml").open("rb") as handle:
        raw = tomllib.load(handle)
    recipe = dict(raw.get("recipe", {}))
    finetune = recipe.pop("finetune", {})
    data = raw.get("data", ["data.jsonl.gz"])
    return TaskSpec(
        name=raw.get("name", folder.name),
        description=raw.get("description", "").strip(),
        family=raw.get("family", raw.get("name", folder.name)),
        folder=folder,
        data_files=tuple([data] if isinstance(data, str) else data),
        fractions=SplitFractions(**raw.get("splits", {})),
        weak=_weak_spec(folder, raw.get("weak", {})),
        strong=EncoderSpec(**_model_path(folder, raw.get("strong", {"kind": "minilm-frozen"}))),
        head=HeadRecipe(**recipe),
        finetune=FinetuneRecipe(**finetune),
    )


def _rows(name: str, payload: bytes) -> list[tuple[str, int]]:
    text = (gzip.decompress(payload) if name.endswith(".gz") else payload).decode("utf-8")
    stem = name.removesuffix(".gz")
    if stem.endswith(".jsonl"):
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif stem.endswith(".csv"):
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        raise ValueError(f"data file {name!r} is neither .jsonl nor .csv (optionally .gz)")
    return [(str(r["text"]), int(r["label"])) for r in records]


def load_task(name_or_folder: str | Path, root: Path | None = None) -> Task:
    """Load a task pack by name (under root, default ``servers/pgr/tasks``) or by folder path."""
    folder = Path(name_or_folder)
    if not (folder / "task.toml").is_file():
        folder = (root or default_tasks_root()) / str(name_or_folder)
    if not (folder / "task.toml").is_file():
        raise FileNotFoundError(f"no task pack {name_or_folder!r}: {folder / 'task.toml'} does not exist")
    spec = _read_spec(folder)
    digest = hashlib.sha256()
    rows: list[tuple[str, int]] = []
    for name in spec.data_files:
        payload = (folder / name).read_bytes()
        digest.update(payload)
        rows += _rows(name, payload)
    labels = np.array([label for _, label in rows], dtype=np.int64)
    if not np.isin(labels, (0, 1)).all() or len(np.unique(labels)) != 2:
        raise ValueError(f"task {spec.name!r}: labels must be 0 and 1, both present")
    return Task(spec=spec, texts=tuple(t for t, _ in rows), labels=labels, data_hash=digest.hexdigest())


def list_tasks(root: Path | None = None) -> list[str]:
    """Names of the task packs under root (default ``servers/pgr/tasks``)."""
    base = root or default_tasks_root()
    return sorted(p.parent.name for p in base.glob("*/task.toml"))
