"""`aar`: serve the MCP servers, manage agent tokens, export manifests, print client configs, run a team."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servers import catalog
from servers.kit import manifest
from servers.kit.errors import ToolInputError
from servers.kit.hosting import configure_logging, mcp_path, serve_http, serve_stdio
from servers.kit.identity import TokenStore, validate_agent_name
from servers.kit.settings import Settings, get_settings

if TYPE_CHECKING:  # the servers' commands should not pay for the client's imports
    from client.console.serve import ConsoleOptions


def _local_user() -> str:
    """The local user's name made into a valid agent name (the stdio default identity)."""
    name = re.sub(r"[^a-z0-9_-]", "-", getpass.getuser().lower()).strip("-_") or "local"
    return name[:32]


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    overrides: dict[str, Any] = {key: value for key, value in (("host", args.host), ("port", args.port)) if value}
    if args.unsafe_no_isolation:
        overrides["sandbox_unsafe_no_isolation"] = True
    settings = settings.model_copy(update=overrides)
    names = catalog.server_names() if args.name == "all" else [args.name]
    if not args.http:
        if args.name == "all":
            print("error: `aar serve all` needs --http (stdio carries one server per process)", file=sys.stderr)
            return 2
        agent = validate_agent_name(args.agent or _local_user())
        return serve_stdio(args.name, catalog.factory(args.name)(settings, local_agent=agent), settings)
    servers = {name: catalog.factory(name)(settings) for name in names}
    return serve_http(servers, settings, json_response=catalog.ANSWERS_AT_ONCE)


async def _tokens(args: argparse.Namespace) -> int:
    store = await TokenStore.open(get_settings().identity_db)
    try:
        if args.action == "create":
            for name in args.names:
                token = await store.create(name)
                print(f"{name}\t{token}" if len(args.names) > 1 else token)
        elif args.action == "revoke":
            for name in args.names:
                if not await store.revoke(name):
                    print(f"no token for {name!r}", file=sys.stderr)
                    return 1
        else:
            for name in await store.agents():
                print(name)
    finally:
        await store.close()
    return 0


async def _manifest(args: argparse.Namespace) -> int:
    if args.action == "docs":
        manifest.DOCS_DIR.mkdir(parents=True, exist_ok=True)
        for name in catalog.server_names():
            path = manifest.DOCS_DIR / f"{name}.md"
            path.write_text(manifest.reference(manifest.load(name)))
            print(path)
        return 0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aar-manifest-") as scratch:
        settings = Settings(data_dir=Path(scratch))
        for name in catalog.server_names():
            live = await manifest.describe(name, catalog.factory(name)(settings, local_agent="manifest"))
            if args.check:
                problems = (
                    manifest.drift(manifest.load(name), live) if manifest.manifest_path(name).exists() else ["missing"]
                )
                for problem in problems:
                    print(f"{name}: {problem}", file=sys.stderr)
                failures += bool(problems)
            else:
                print(manifest.write(live))
    return 1 if failures else 0


def _own_command() -> list[str]:
    """The command line that starts this very `aar`: its script when run as one, else this interpreter
    with `-m client.cli` (never the first `aar` on PATH, which may be another installation)."""
    launched = Path(sys.argv[0])
    if launched.name == "aar" and launched.is_file():
        return [str(launched.resolve())]
    return [sys.executable, "-m", "client.cli"]


def _env_value(value: Any) -> str:
    """A setting as its AAR_* variable holds it; paths absolute (Claude Desktop starts servers from /)."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, default=lambda item: str(Path(item).resolve()))
    return str(value)


def _settings_env(settings: Settings) -> dict[str, str]:
    """Every setting that differs from its default (from the environment or .env), and the data directory."""
    env = {"AAR_DATA_DIR": _env_value(settings.data_dir)}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value != field.get_default(call_default_factory=True):
            env[f"AAR_{name.upper()}"] = _env_value(value)
    if os.environ.get("PYTHONPATH"):  # the code this `aar` runs, where it is not installed
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(part).resolve()) for part in os.environ["PYTHONPATH"].split(os.pathsep) if part
        )
    return env


def _desktop_config(args: argparse.Namespace) -> int:
    settings = get_settings()
    command, *prefix = _own_command()
    env = _settings_env(settings)
    agent = args.agent or _local_user()
    stdio = {
        name: {"command": command, "args": [*prefix, "serve", name, "--agent", agent], "env": env}
        for name in catalog.server_names()
    }
    desktop = {"mcpServers": stdio}
    code_servers: dict[str, Any] = {name: {"type": "stdio", **entry} for name, entry in stdio.items()}
    code_http = {
        name: {
            "type": "http",
            "url": f"http://{settings.host}:{settings.port}{mcp_path(name)}",
            "headers": {"Authorization": "Bearer ${AAR_TOKEN}"},
        }
        for name in catalog.server_names()
    }
    blocks = {
        "desktop": desktop,
        "code": {"mcpServers": code_servers},
        "code-http": {"mcpServers": code_http},
    }
    if args.format != "all":
        print(json.dumps(blocks[args.format], indent=2))
        return 0
    print("# Claude Desktop: merge into claude_desktop_config.json")
    print(json.dumps(desktop, indent=2))
    print("\n# Claude Code: save as .mcp.json in your project (stdio)")
    print(json.dumps(blocks["code"], indent=2))
    print("\n# Claude Code over HTTP, against `aar serve all --http` (export AAR_TOKEN from `aar tokens create NAME`)")
    print(json.dumps(blocks["code-http"], indent=2))
    return 0


def _run_team(args: argparse.Namespace) -> int:
    # imported here: the servers' commands should not pay for the client's imports
    from client.backends import BackendUnavailable
    from client.manifest import ManifestError
    from client.servers import ServerStartError
    from client.team import RunRequest, run_team

    for noisy in ("httpx2", "httpcore2", "mcp", "anthropic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("model", args.model),
            ("budget.deadline", args.deadline),
            ("budget.agent.turns", args.turns),
            ("budget.agent.tokens", args.tokens),
            ("budget.agent.dollars", args.dollars),
            ("budget.agent.pgr_submissions", args.submissions),
            ("budget.team.dollars", args.team_dollars),
            ("budget.team.pgr_submissions", args.team_submissions),
        )
        if value is not None
    }
    if args.unsafe_no_isolation:
        overrides["servers.unsafe_no_isolation"] = True
    request = RunRequest(
        console=None if args.no_console else _console_options(args),
        manifest=args.manifest,
        resume=args.resume,
        overrides=overrides,
        agents=args.agents,
        backend=args.backend,
        runs_root=args.runs_dir or get_settings().data_dir / "runs",
        live=sys.stderr.isatty() if args.live is None else args.live,
        announce=lambda line: print(line, flush=True),
    )
    try:
        result = asyncio.run(run_team(request))
    except (ManifestError, BackendUnavailable, ServerStartError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if request.run_dir is not None and (request.run_dir.path / "summary.txt").exists():
            print((request.run_dir.path / "summary.txt").read_text(), end="")
            print(f"interrupted; continue with: aar run --resume {request.run_dir.path}")
        return 130
    print(result.text, end="")
    print(f"browse this run in the lab console: aar console {result.run_dir.path}")
    if result.summary["stopped"]:
        print(f"error: {result.summary['stopped']}", file=sys.stderr)
        print(f"continue with: aar run --resume {result.run_dir.path}", file=sys.stderr)
        return 1
    return 0


def _console_options(args: argparse.Namespace) -> ConsoleOptions:
    from client.console.serve import ConsoleOptions

    operators = [validate_agent_name(name) for name in args.operator] if args.operator else [_local_user()]
    return ConsoleOptions(host=args.console_host, port=args.console_port, operators=operators)


def _console(args: argparse.Namespace) -> int:
    """Serve the console of a run directory until Ctrl-C."""
    from client.console.app import create_console
    from client.console.run import RunView
    from client.console.serve import console_running
    from client.record import RunDir

    try:
        view = RunView(RunDir.existing(args.run_dir))
    except FileNotFoundError as error:
        print(
            f"error: {error}; give a directory that `aar run` made (they are under AAR_DATA_DIR/runs)", file=sys.stderr
        )
        return 2

    async def serve() -> None:
        options = _console_options(args)
        async with console_running(
            lambda access: create_console(view, access), options, lambda line: print(line, flush=True)
        ):
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    return 0


def _add_console_options(parser: argparse.ArgumentParser, host_flag: str, port_flag: str) -> None:
    from client.console.serve import DEFAULT_PORT

    parser.add_argument(
        host_flag,
        dest="console_host",
        default="127.0.0.1",
        help="Console bind address (default 127.0.0.1; any other address requires a token per operator).",
    )
    parser.add_argument(
        port_flag, dest="console_port", type=int, default=DEFAULT_PORT, help=f"Console port (default {DEFAULT_PORT})."
    )
    parser.add_argument(
        "--operator",
        action="append",
        metavar="NAME",
        help="Who steers (recorded with every action); repeat for several people, each gets a token off loopback."
        " Default: the local user.",
    )


def _baselines(args: argparse.Namespace) -> int:
    """Mean and standard error of every baseline's PGR over seeds, per task (cached features)."""
    from servers.pgr.verdict import Margins
    from servers.w2s.controls import CONTROLS
    from servers.w2s.methods import BASELINES, FINETUNE_BASELINES, paper
    from servers.w2s.table import format_summaries, format_table, method_summaries, run_table

    known = {**BASELINES, **FINETUNE_BASELINES}
    names = args.methods or list(BASELINES)
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"error: unknown baselines {unknown}; choose from {', '.join(known)}", file=sys.stderr)
        return 2
    settings = get_settings()
    rows = run_table(
        {name: known[name] for name in names},
        args.tasks,
        range(args.seeds),
        controls=CONTROLS if args.control else ("none",),
        cache_dir=settings.cache_dir,
        tasks_root=settings.pgr_tasks_dir,
    )
    print(format_table(rows))
    margins = Margins(settings.pgr_control_margin, settings.pgr_decoy_margin, settings.pgr_transfer_margin)
    summaries = method_summaries(rows, {name: paper(known[name]) for name in names}, margins)
    print()
    print(format_summaries(summaries))
    if args.brief is not None:
        from servers.pgr.brief import write_brief

        write_brief(args.brief, rows, summaries)
        print(f"wrote the method section of {args.brief} and {args.brief.with_name('baselines.json')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aar", description="AAR Lab: automated alignment research harness.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Run a server over stdio (default) or streamable HTTP.")
    serve.add_argument("name", choices=[*catalog.server_names(), "all"])
    serve.add_argument("--http", action="store_true", help="Serve over streamable HTTP (bearer tokens required).")
    serve.add_argument("--agent", help="Identity of the stdio caller (default: the local user).")
    serve.add_argument("--host", help="HTTP bind address (default AAR_HOST or 127.0.0.1).")
    serve.add_argument("--port", type=int, help="HTTP port (default AAR_PORT or 8700).")
    serve.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="Run sandbox commands WITHOUT bubblewrap (no isolation at all; never with untrusted agents).",
    )

    tokens = commands.add_parser("tokens", help="Create, list or revoke agents' bearer tokens.")
    tokens.add_argument("action", choices=["create", "list", "revoke"])
    tokens.add_argument("names", nargs="*", metavar="NAME")

    manifest_command = commands.add_parser("manifest", help="Write manifests/servers/*.json from the live servers.")
    manifest_command.add_argument(
        "action", choices=["export", "docs"], help="docs: write docs/tools/NAME.md from the manifests."
    )
    manifest_command.add_argument("--check", action="store_true", help="Only compare; exit 1 on any drift.")

    run = commands.add_parser(
        "run",
        help="Run a team of researchers (Claude with ANTHROPIC_API_KEY, else the scripted researcher).",
        description="Run a team of automated researchers against the servers until its budgets end.",
    )
    run.add_argument(
        "manifest", nargs="?", help="A run manifest: a path, or a name in manifests/runs/ (default: nine)."
    )
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="Continue every agent of an earlier run.")
    run.add_argument("--backend", choices=["auto", "anthropic", "scripted"], help="Override the manifest's backend.")
    run.add_argument("--agents", type=int, metavar="N", help="Run only the first N agents of the team.")
    run.add_argument("--model", help="Override the manifest's model.")
    run.add_argument("--deadline", help="Wall-clock time of the run, e.g. 30m, 8h, 3d.")
    run.add_argument("--turns", type=int, help="Model calls per agent.")
    run.add_argument("--tokens", type=int, help="Tokens per agent.")
    run.add_argument("--dollars", type=float, help="Dollars per agent.")
    run.add_argument("--submissions", type=int, help="PGR submissions per agent.")
    run.add_argument("--team-dollars", type=float, help="Dollars for the whole team.")
    run.add_argument("--team-submissions", type=int, help="PGR submissions for the whole team.")
    run.add_argument("--runs-dir", type=Path, help="Where run directories go (default AAR_DATA_DIR/runs).")
    run.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Live view on stderr (default: on a terminal).",
    )
    run.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="Launch the sandbox WITHOUT bubblewrap (never with untrusted agents).",
    )

    run.add_argument("--no-console", action="store_true", help="Do not serve the web console during the run.")
    _add_console_options(run, "--console-host", "--console-port")

    console = commands.add_parser("console", help="Serve the web console of a run directory (finished or running).")
    console.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _add_console_options(console, "--host", "--port")

    pgr = commands.add_parser("pgr", help="The W2S testbed: `aar pgr baselines` prints the baseline PGR table.")
    pgr.add_argument("action", choices=["baselines"])
    pgr.add_argument("--seeds", type=int, default=5, help="Seeds 0..N-1 (default 5).")
    pgr.add_argument("--tasks", nargs="*", help="Task packs (default: all).")
    pgr.add_argument("--methods", nargs="*", help="Baselines (default: every frozen-feature baseline).")
    pgr.add_argument("--control", action="store_true", help="Also run the shuffled- and decoy-teacher controls.")
    pgr.add_argument(
        "--brief",
        type=Path,
        metavar="BACKGROUND_MD",
        help="Rewrite the research brief's generated method section (servers/pgr/background.md) from this table.",
    )

    config = commands.add_parser("desktop-config", help="Print Claude Desktop and Claude Code configs.")
    config.add_argument("--format", choices=["all", "desktop", "code", "code-http"], default="all")
    config.add_argument("--agent", help="Identity of the stdio caller (default: the local user).")
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ToolInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command == "tokens":
        if args.action in ("create", "revoke") and not args.names:
            print(f"error: `aar tokens {args.action}` needs at least one NAME", file=sys.stderr)
            return 2
        return asyncio.run(_tokens(args))
    if args.command == "manifest":
        return asyncio.run(_manifest(args))
    if args.command == "run":
        return _run_team(args)
    if args.command == "pgr":
        return _baselines(args)
    if args.command == "console":
        return _console(args)
    return _desktop_config(args)


if __name__ == "__main__":
    sys.exit(main())
