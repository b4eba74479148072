"""Run manifests (manifests/runs/*.toml): the team, its servers, model, prompts, tools and budgets.

A manifest is checked in two passes: pydantic checks each field's type and range, then
`_check` checks what needs the whole manifest and the server manifests (tool allowlists,
connect-mode URLs and tokens, prices). Every failure becomes a `ManifestError` that names the
file, the field and what is allowed.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from client.costs import Price, context_window, known_price
from servers.kit.identity import OPERATOR_ONLY
from servers.kit.names import AGENT_NAME

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN_MANIFEST_DIR = PROJECT_ROOT / "manifests" / "runs"
SERVER_MANIFEST_DIR = PROJECT_ROOT / "manifests" / "servers"
DEFAULT_MANIFEST = RUN_MANIFEST_DIR / "nine.toml"
TOOL_SEPARATOR = "__"
ANTHROPIC_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ManifestError(ValueError):
    """A run manifest that cannot be used: which file, which field, what is allowed."""

    def __init__(self, path: Path | str, field: str, message: str) -> None:
        super().__init__(f"{path}: {field}: {message}")
        self.path, self.field, self.message = str(path), field, message


def parse_duration(value: Any) -> Any:
    """'90s', '5m', '2h', '3d' or a number of seconds -> seconds (anything else is left for pydantic)."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h or d (e.g. '5m')")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetLimits(_Strict):
    """Limits for one agent (or the whole team); a missing field is no limit."""

    turns: int | None = Field(default=None, ge=1, description="Model calls.")
    tokens: int | None = Field(default=None, ge=1, description="Tokens billed: input, cache and output.")
    dollars: float | None = Field(default=None, gt=0)
    pgr_submissions: int | None = Field(default=None, ge=0, description="Calls of pgr's submit.")


class Budgets(_Strict):
    deadline: Duration | None = Field(default=None, description="Wall-clock time of the run, summed over resumes.")
    finish: Duration = Field(default=120, description="After the work stops, how long to wait for queued scores.")
    agent: BudgetLimits = BudgetLimits()
    team: BudgetLimits = BudgetLimits()


class Servers(_Strict):
    """Which servers the agents use, and whether this run launches them or connects to running ones."""

    mode: Literal["launch", "connect"] = "launch"
    use: list[str] = Field(default_factory=lambda: ["forum", "storage", "sandbox", "pgr"], min_length=1)
    urls: dict[str, str] = Field(default_factory=dict, description="connect: server name -> streamable HTTP URL.")
    tokens: dict[str, str] = Field(
        default_factory=dict, description="connect: agent -> bearer token, or '$VAR' to read it from the environment."
    )
    env: dict[str, str] = Field(default_factory=dict, description="launch: extra AAR_* settings for the servers.")
    unsafe_no_isolation: bool = Field(default=False, description="launch: run the sandbox without bubblewrap.")
    tool_timeout: Duration = Field(default=900, description="Longest a tool call may take before it is abandoned.")
    reconnect: Duration = Field(default=120, description="How long to keep trying to reach a server that went away.")


class CompactionPolicy(_Strict):
    """When to compact a conversation, and what to keep of it."""

    compact_at_tokens: int = Field(default=150_000, ge=2_000)
    keep_recent_turns: int = Field(default=4, ge=0, description="Latest turns kept verbatim beside the summary.")
    summary_max_tokens: int = Field(default=4_000, ge=256)


class Retry(_Strict):
    """Backoff of model calls answered 429, 529, 5xx or malformed: retried until the run's deadline."""

    initial_s: float = Field(default=1.0, ge=0, description="First wait; doubles with each failure.")
    max_s: float = Field(default=60.0, ge=0, description="Longest wait between attempts (before jitter).")
    max_empty_replies: int = Field(
        default=3, ge=1, description="Empty answers in a row before the agent stops (each is asked again)."
    )


class AgentSpec(_Strict):
    name: str = Field(pattern=AGENT_NAME.pattern, description="1-32 of a-z, 0-9, '_' and '-'.")
    direction: str = Field(min_length=1, description="Where this researcher starts; deliberately open.")
    tools: list[str] | None = Field(default=None, description="Overrides the manifest's tool allowlist.")
    model: str | None = None
    budget: BudgetLimits | None = Field(default=None, description="Overrides the manifest's per-agent budget.")
    gpus: int | None = Field(default=None, ge=0, description="Overrides the manifest's GPUs per sandbox job.")


DEFAULT_KICKOFF = """\
You are $agent, one of $team_size researchers on this team. Your starting direction: $direction

Your colleagues and where they start:
$team

Your budget: $budget. Start by reading the forum feed."""


class RunManifest(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    description: str = ""
    backend: Literal["auto", "anthropic", "scripted"] = Field(
        default="auto", description="auto: Claude when ANTHROPIC_API_KEY is set, else the scripted researcher."
    )
    model: str = "claude-opus-4-6"
    max_tokens: int = Field(default=16_000, ge=1)
    model_timeout: Duration = Field(default=600, description="Longest one model call may take before it is retried.")
    system_prompt: str = Field(
        min_length=1, description="The text (from system_prompt_file: one file, or a list of files joined in order)."
    )
    kickoff: str = Field(default=DEFAULT_KICKOFF, min_length=1)
    tools: list[str] | None = Field(default=None, description="Tool allowlist; default every tool of servers.use.")
    pricing: Price | None = None
    servers: Servers = Servers()
    budget: Budgets = Budgets()
    context: CompactionPolicy = CompactionPolicy()
    retry: Retry = Retry()
    gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs each sandbox job of an agent gets unless the job asks otherwise (start_job's `gpus`);"
        " default: the sandbox's own (one GPU where it has any).",
    )
    agents: list[AgentSpec] = Field(min_length=1)

    def agent(self, name: str) -> AgentSpec:
        return self._agents_by_name[name]

    @functools.cached_property
    def _agents_by_name(self) -> dict[str, AgentSpec]:
        """Agents by name: looking each of a thousand agents up in a list was quadratic."""
        return {agent.name: agent for agent in self.agents}

    def agent_budget(self, name: str) -> BudgetLimits:
        return self.agent(name).budget or self.budget.agent

    def agent_model(self, name: str) -> str:
        return self.agent(name).model or self.model

    def price(self, model: str) -> Price:
        price = self.pricing or known_price(model)
        assert price is not None, "checked when the manifest was loaded"
        return price

    def tool_defaults(self, name: str) -> dict[str, dict[str, Any]]:
        """Arguments agent `name`'s calls get when the model leaves them out: tool -> argument -> value."""
        own = self.agent(name).gpus
        gpus = self.gpus if own is None else own
        return {} if gpus is None else {"sandbox__start_job": {"gpus": gpus}}

    def allowed_tools(self, name: str, catalogue: ToolCatalogue) -> list[str]:
        """The `server__tool` names agent `name` may call (its patterns expanded against the catalogue)."""
        patterns = self.agent(name).tools or self.tools or ["*"]
        return list(_matching(tuple(catalogue.names(self.servers.use)), tuple(patterns)))


@functools.lru_cache(maxsize=64)
def _matching(names: tuple[str, ...], patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The names that match any pattern; agents share a few pattern lists, so each is matched once."""
    return tuple(name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))


class ToolCatalogue:
    """Every tool the servers declare (manifests/servers/NAME/lock.json), as `server__tool` names with annotations."""

    def __init__(self, manifests: Mapping[str, Mapping[str, Any]]) -> None:
        self.servers = {
            name: {tool["name"]: tool for tool in manifest["tools"] if not tool.get("_meta", {}).get(OPERATOR_ONLY)}
            for name, manifest in manifests.items()
        }

    @classmethod
    def load(cls, directory: Path = SERVER_MANIFEST_DIR) -> ToolCatalogue:
        return cls({path.parent.name: json.loads(path.read_text()) for path in sorted(directory.glob("*/lock.json"))})

    def names(self, servers: Sequence[str]) -> list[str]:
        return [f"{server}{TOOL_SEPARATOR}{tool}" for server in servers for tool in self.servers.get(server, {})]

    def declared(self, name: str) -> dict[str, Any] | None:
        server, _, tool = name.partition(TOOL_SEPARATOR)
        return self.servers.get(server, {}).get(tool)

    def idempotent(self, name: str) -> bool:
        """Safe to repeat after a failed connection: read-only or idempotent by the server's own annotations."""
        annotations = (self.declared(name) or {}).get("annotations", {})
        return bool(annotations.get("readOnlyHint") or annotations.get("idempotentHint"))


def resolve_manifest_path(name_or_path: str | Path | None) -> Path:
    """A path as given, or a bare name looked up in manifests/runs/ ('nine' -> manifests/runs/nine.toml)."""
    if name_or_path is None:
        return DEFAULT_MANIFEST
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    return RUN_MANIFEST_DIR / f"{path}.toml"


def load_manifest(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    catalogue: ToolCatalogue | None = None,
    agents: int | None = None,
) -> RunManifest:
    """Read, override (dotted keys such as 'budget.deadline') and validate a run manifest.

    `agents` keeps only the first N agents of the team.
    """
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(p.stem for p in sorted(RUN_MANIFEST_DIR.glob("*.toml")))
        raise ManifestError(path, "(file)", f"no such manifest; the shipped ones are: {known}") from None
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(path, "(syntax)", f"not valid TOML: {error}") from None
    return manifest_from_dict(raw, path, overrides, catalogue=catalogue, agents=agents)


def manifest_from_dict(
    raw: dict[str, Any],
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    catalogue: ToolCatalogue | None = None,
    agents: int | None = None,
) -> RunManifest:
    raw = json.loads(json.dumps(raw))  # a deep copy that overrides may change
    for dotted, value in (overrides or {}).items():
        target = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    if agents is not None:
        if agents < 1:
            raise ManifestError(path, "agents", "--agents must be at least 1")
        raw["agents"] = raw.get("agents", [])[:agents]
    prompt_file = raw.pop("system_prompt_file", None)
    if prompt_file is not None:
        if "system_prompt" in raw:
            raise ManifestError(path, "system_prompt_file", "give system_prompt or system_prompt_file, not both")
        texts = []
        for name in prompt_file if isinstance(prompt_file, list) else [prompt_file]:  # a list is joined in order
            prompt_path = path.parent / str(name)
            if not prompt_path.is_file():
                raise ManifestError(path, "system_prompt_file", f"{prompt_path} does not exist")
            texts.append(prompt_path.read_text().strip())
        raw["system_prompt"] = "\n\n".join(texts) + "\n"
    try:
        manifest = RunManifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        raise ManifestError(path, _field(first["loc"]), _explain(first)) from None
    _check(manifest, path, catalogue or ToolCatalogue.load())
    return manifest


def _field(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _explain(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        parent: type[BaseModel] = RunManifest
        for part in error["loc"][:-1]:
            if isinstance(part, str):
                annotation = parent.model_fields[part].annotation
                inner = getattr(annotation, "__args__", (annotation,))
                parent = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), parent)
        return f"unknown field; allowed: {', '.join(parent.model_fields)}"
    if error["type"] == "missing":
        return "required field is missing"
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def _check(manifest: RunManifest, path: Path, catalogue: ToolCatalogue) -> None:
    known_servers = sorted(catalogue.servers)
    for index, server in enumerate(manifest.servers.use):
        if server not in catalogue.servers:
            raise ManifestError(
                path,
                f"servers.use[{index}]",
                f"{server!r} has no manifest in manifests/servers/; known: {', '.join(known_servers)}",
            )
    names = [agent.name for agent in manifest.agents]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise ManifestError(path, f"agents[{index}].name", f"{name!r} appears twice; agent names must be unique")
    offered = catalogue.names(manifest.servers.use)
    for name in offered:
        if not ANTHROPIC_TOOL_NAME.match(name):
            raise ManifestError(path, "servers.use", f"tool {name!r} cannot be named for the Messages API")
    if manifest.tools is not None:
        _check_patterns(path, "tools", manifest.tools, offered, manifest.servers.use)
    for index, agent in enumerate(manifest.agents):
        if agent.tools is not None:
            _check_patterns(path, f"agents[{index}].tools", agent.tools, offered, manifest.servers.use)
    if manifest.servers.mode == "connect":
        for server in manifest.servers.use:
            if server not in manifest.servers.urls:
                raise ManifestError(path, "servers.urls", f"connect mode needs a URL for {server!r}")
        for name in names:
            if name not in manifest.servers.tokens:
                raise ManifestError(path, "servers.tokens", f"connect mode needs a token for agent {name!r}")
    for index, agent in enumerate(manifest.agents):
        model = agent.model or manifest.model
        field = f"agents[{index}].model" if agent.model else "model"
        if manifest.pricing is None and known_price(model) is None:
            raise ManifestError(
                path, field, f"no known price for {model!r}: add [pricing] with input and output $/MTok"
            )
        if manifest.context.compact_at_tokens >= context_window(model):
            raise ManifestError(
                path,
                "context.compact_at_tokens",
                f"must be below the context window of {model} ({context_window(model)} tokens)",
            )


def _check_patterns(path: Path, field: str, patterns: list[str], offered: list[str], servers: list[str]) -> None:
    for index, pattern in enumerate(patterns):
        server = pattern.partition(TOOL_SEPARATOR)[0]
        if TOOL_SEPARATOR not in pattern:
            message = f"{pattern!r} is not SERVER__TOOL (a glob such as 'forum__*' is allowed)"
        elif not any(fnmatch.fnmatchcase(tool, pattern) for tool in offered):
            in_use = server in servers or any(ch in server for ch in "*?[")
            scope = [t for t in offered if t.startswith(server + TOOL_SEPARATOR)] if in_use else []
            message = f"{pattern!r} matches no tool; allowed: " + (
                ", ".join(scope) if scope else f"a tool of the servers in use ({', '.join(servers)})"
            )
        else:
            continue
        raise ManifestError(path, f"{field}[{index}]", message)
