from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from servers.w2s.tasks import default_tasks_root, list_tasks, load_task

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_packs_load_balanced_and_without_duplicate_texts() -> None:
    assert {"wordnet-living", "wordnet-act-state", "wordnet-food-substance", "negation"} <= set(list_tasks())
    for name in list_tasks():
        task = load_task(name)
        assert len(task.texts) == len(set(task.texts)) >= 5000
        assert abs(task.labels.mean() - 0.5) < 0.02


def test_wordnet_derived_packs_carry_the_wordnet_licence() -> None:
    for name in ("wordnet-living", "wordnet-act-state", "wordnet-food-substance"):
        licence = (default_tasks_root() / name / "WORDNET-LICENSE").read_text()
        assert "WordNet 3.0 Copyright 2006 by Princeton University" in licence


def test_the_default_task_holds_living_things_against_objects_and_stuff() -> None:
    task = load_task("wordnet-living")
    label = dict(zip(task.texts, task.labels.tolist(), strict=True))
    assert all(text == text.lower() for text in task.texts)
    assert np.mean([label.get(word, 1) for word in ("oak", "zebra", "sparrow")]) == 1
    assert np.mean([label.get(word, 0) for word in ("hammer", "granite", "bread")]) == 0


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="WordNet is not installed")
def test_the_derive_script_reproduces_the_shipped_data_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "scripts/derive_tasks.py", "--out", str(tmp_path)], cwd=ROOT, check=True)
    for name in list_tasks():
        shipped = default_tasks_root() / name
        for produced in (tmp_path / name).iterdir():
            assert produced.read_bytes() == (shipped / produced.name).read_bytes(), produced
