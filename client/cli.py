"""`aar`, the single entry point: the servers' commands (servers/cli.py), client configs, and running a team."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servers import cli as server_commands
from servers.cli import local_user
from servers.kit import manifest as server_manifests
from servers.kit.errors import ToolInputError
from servers.kit.hosting import configure_logging
from servers.kit.identity import validate_agent_name
from servers.kit.settings import get_settings

if TYPE_CHECKING:  # the servers' commands should not pay for the client's imports
    from client.console.serve import ConsoleOptions


def _desktop_config(args: argparse.Namespace) -> int:
    blocks = server_manifests.client_configs(get_settings(), args.agent or local_user())
    if args.format != "all":
        print(json.dumps(blocks[args.format], indent=2))
        return 0
    print("# Claude Desktop: merge into claude_desktop_config.json")
    print(json.dumps(blocks["desktop"], indent=2))
    print("\n# Claude Code: save as .mcp.json in your project (stdio)")
    print(json.dumps(blocks["code"], indent=2))
    print("\n# Claude Code over HTTP, against `aar serve all --http` (export AAR_TOKEN from `aar tokens create NAME`)")
    print(json.dumps(blocks["code-http"], indent=2))
    return 0


def _run_team(args: argparse.Namespace) -> int:
    # imported here: the servers' commands should not pay for the client's imports
    from client.backends import BackendUnavailable
    from client.run_manifest import ManifestError
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

    operators = [validate_agent_name(name) for name in args.operator] if args.operator else [local_user()]
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

    server_commands.add_commands(commands)

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
    if hasattr(args, "handler"):  # a server command (servers/cli.py)
        return int(args.handler(args))
    if args.command == "run":
        return _run_team(args)
    if args.command == "pgr":
        return _baselines(args)
    if args.command == "console":
        return _console(args)
    return _desktop_config(args)


if __name__ == "__main__":
    sys.exit(main())
