"""Run manifests: the shipped ones load, and a bad one is refused with the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.budget import RunClock
from client.record import AgentProgress
from client.run_manifest import (
    ANTHROPIC_TOOL_NAME,
    RUN_MANIFEST_DIR,
    ManifestError,
    ToolCatalogue,
    load_manifest,
    manifest_from_dict,
    parse_duration,
)
from client.team import KICKOFF_ROSTER, _kickoff


def minimal(**extra: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "name": "t",
        "system_prompt": "You are a researcher.",
        "servers": {"use": ["forum", "storage", "sandbox"]},
        "agents": [{"name": "alpha", "direction": "Anything."}],
    }
    raw.update(extra)
    return raw


def test_the_default_manifest_has_nine_agents_with_different_directions_and_a_short_budget() -> None:
    manifest = load_manifest(RUN_MANIFEST_DIR / "nine.toml")
    assert len(manifest.agents) == 9
    assert len({agent.direction for agent in manifest.agents}) == 9
    assert manifest.model == "claude-opus-4-6"
    assert manifest.budget.deadline is not None and manifest.budget.deadline <= 600
    assert "PGR" in manifest.system_prompt and "shuffled" in manifest.system_prompt
    assert set(manifest.servers.use) == {"forum", "storage", "sandbox", "pgr"}


@pytest.mark.parametrize("path", sorted(RUN_MANIFEST_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_run_manifest_is_valid(path: Path) -> None:
    load_manifest(path)


def test_every_tool_of_every_server_has_a_name_the_messages_api_accepts() -> None:
    catalogue = ToolCatalogue.load()
    names = catalogue.names(sorted(catalogue.servers))
    assert names and all(ANTHROPIC_TOOL_NAME.match(name) for name in names)


def test_an_agent_is_offered_only_the_tools_its_allowlist_names() -> None:
    raw = minimal(tools=["forum__*", "sandbox__read_file"])
    raw["agents"] = [{"name": "alpha", "direction": "x"}, {"name": "beta", "direction": "y", "tools": ["storage__log"]}]
    manifest = manifest_from_dict(raw, Path("t.toml"))
    catalogue = ToolCatalogue.load()
    alpha = manifest.allowed_tools("alpha", catalogue)
    assert "forum__post" in alpha and "sandbox__read_file" in alpha and "sandbox__exec" not in alpha
    assert manifest.allowed_tools("beta", catalogue) == ["storage__log"]


def test_overrides_and_the_agent_limit_apply_before_validation() -> None:
    raw = minimal()
    raw["agents"] = [{"name": f"a{n}", "direction": "x"} for n in range(5)]
    manifest = manifest_from_dict(raw, Path("t.toml"), {"budget.deadline": "2h", "budget.agent.turns": 7}, agents=2)
    assert [agent.name for agent in manifest.agents] == ["a0", "a1"]
    assert manifest.budget.deadline == 7200 and manifest.agent_budget("a0").turns == 7


def test_durations_take_seconds_or_a_unit() -> None:
    assert [parse_duration(v) for v in ("90", "90s", "5m", "2h", "1.5d", 30)] == [90, 90, 300, 7200, 129600, 30]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"colour": "blue"}, "colour", "allowed: name, description"),
        ({"budget": {"agent": {"turns": 0}}}, "budget.agent.turns", "greater than or equal to 1"),
        ({"budget": {"deadline": "soon"}}, "budget.deadline", "use seconds or a number with s, m, h or d"),
        ({"backend": "gpt"}, "backend", "'auto', 'anthropic' or 'scripted'"),
        ({"tools": ["forum__delete"]}, "tools[0]", "allowed: forum__post, forum__reply"),
        ({"tools": ["post"]}, "tools[0]", "SERVER__TOOL"),
        ({"servers": {"use": ["forum", "mail"]}}, "servers.use[1]", "known: forum"),
        ({"servers": {"use": ["forum"], "mode": "connect"}}, "servers.urls", "needs a URL for 'forum'"),
        ({"model": "gpt-5"}, "model", "add [pricing]"),
        ({"agents": [{"name": "Alice!", "direction": "x"}]}, "agents[0].name", "should match pattern"),
        ({"agents": [{"name": "a", "direction": "x"}, {"name": "a", "direction": "y"}]}, "agents[1].name", "unique"),
        ({"agents": []}, "agents", "at least 1"),
        ({"context": {"compact_at_tokens": 5_000_000}}, "context.compact_at_tokens", "below the context window"),
    ],
)
def test_a_bad_manifest_names_the_file_the_field_and_what_is_allowed(
    change: dict[str, object], field: str, allowed: str
) -> None:
    with pytest.raises(ManifestError) as raised:
        manifest_from_dict(minimal(**change), Path("runs/bad.toml"))
    assert str(raised.value).startswith(f"runs/bad.toml: {field}: ")
    assert allowed in str(raised.value)


def test_a_manifest_that_is_not_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\nagents = = 3\nmodel = "m"\n')
    with pytest.raises(ManifestError, match=r"broken\.toml: \(syntax\): not valid TOML: .*line"):
        load_manifest(path)


def test_a_missing_manifest_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nine"):
        load_manifest(tmp_path / "absent.toml")


def test_a_big_team_is_looked_up_by_name_and_its_kickoff_names_a_bounded_roster() -> None:
    team = [{"name": f"agent-{n}", "direction": f"direction {n}."} for n in range(KICKOFF_ROSTER + 30)]
    manifest = manifest_from_dict(minimal(agents=team), Path("big.toml"))
    assert manifest.agent("agent-70").direction == "direction 70."
    kickoff = _kickoff(manifest, "agent-0", AgentProgress(), RunClock(None))
    assert "agent-0:" not in kickoff and "agent-1: direction 1." in kickoff
    assert f"agent-{KICKOFF_ROSTER}: direction {KICKOFF_ROSTER}." in kickoff  # the 50 others after agent-0
    assert f"agent-{KICKOFF_ROSTER + 1}:" not in kickoff
    assert "and 29 more" in kickoff


def test_an_agents_jobs_get_the_manifests_gpus_unless_the_agent_overrides_them() -> None:
    raw = minimal(gpus=1)
    raw["agents"] = [{"name": "alpha", "direction": "x"}, {"name": "beta", "direction": "y", "gpus": 0}]
    manifest = manifest_from_dict(raw, Path("t.toml"))
    assert manifest.tool_defaults("alpha") == {"sandbox__start_job": {"gpus": 1}}
    assert manifest.tool_defaults("beta") == {"sandbox__start_job": {"gpus": 0}}
    assert manifest_from_dict(minimal(), Path("t.toml")).tool_defaults("alpha") == {}
    with pytest.raises(ManifestError, match="gpus"):
        manifest_from_dict(minimal(gpus=-1), Path("t.toml"))
