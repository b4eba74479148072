"""`aar pgr baselines` prints the baseline table, with the confidence loss above plain cross-entropy."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import AAR, TEST_SETTINGS


@pytest.mark.timeout(1200)  # five seeds of two tasks on a cold cache
def test_the_baseline_table_ranks_the_confidence_loss_above_plain_cross_entropy(tmp_path: Path) -> None:
    env = {**os.environ, **TEST_SETTINGS, "AAR_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [AAR, "pgr", "baselines", "--tasks", "wordnet-living", "--methods", "plain_ce", "aux_confidence"],
        env=env, capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    pgr = {}
    for line in result.stdout.splitlines():
        match = re.match(r"wordnet-living\s+(\w+)\s+none\s+.*\s([+-]\d\.\d\d)±(\d\.\d\d)\s+5$", line)
        if match:
            pgr[match[1]] = float(match[2])
    assert set(pgr) == {"plain_ce", "aux_confidence"}, result.stdout
    assert pgr["aux_confidence"] > pgr["plain_ce"] > 0
    # the research brief's numbers (servers/pgr/baselines.json) are this command's
    stored = json.loads((Path(__file__).parents[2] / "servers" / "pgr" / "baselines.json").read_text())
    for record in stored:
        if record["task"] == "wordnet-living" and record["control"] == "none" and record["method"] in pgr:
            assert abs(record["pgr"]["mean"] - pgr[record["method"]]) <= 0.006, record["method"]
