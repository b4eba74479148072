"""One research brief: generated from the baseline table, served by pgr, included in the default run's prompt."""

from __future__ import annotations

import json

from client.run_manifest import load_manifest, resolve_manifest_path
from servers.kit.settings import Settings
from servers.pgr.brief import BEGIN, BRIEF, END, render_section, replace_section, rows_from_json
from servers.pgr.verdict import Margins
from servers.w2s.methods import BASELINES, paper
from servers.w2s.table import method_summaries


def _regenerated() -> str:
    rows = rows_from_json(json.loads(BRIEF.with_name("baselines.json").read_text()))
    settings = Settings()
    margins = Margins(settings.pgr_control_margin, settings.pgr_decoy_margin, settings.pgr_transfer_margin)
    summaries = method_summaries(rows, {name: paper(method) for name, method in BASELINES.items()}, margins)
    return replace_section(BRIEF.read_text(), render_section(rows, summaries))


def test_the_brief_holds_exactly_the_numbers_of_the_stored_baseline_table() -> None:
    assert _regenerated() == BRIEF.read_text(), "run `aar pgr baselines --control --brief servers/pgr/background.md`"


def test_the_stored_table_covers_every_library_method() -> None:
    records = json.loads(BRIEF.with_name("baselines.json").read_text())
    assert set(BASELINES) <= {record["method"] for record in records}
    section = BRIEF.read_text().split(BEGIN, 1)[1].split(END, 1)[0]
    for name in BASELINES:
        assert f"`{name}`" in section and paper(BASELINES[name]) in section


def test_the_default_run_prompt_includes_the_one_brief() -> None:
    manifest = load_manifest(resolve_manifest_path("nine"))
    assert BRIEF.read_text().strip() in manifest.system_prompt
    assert "about 0.70" not in manifest.system_prompt  # no second, hand-written copy of the numbers
