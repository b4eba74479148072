"""The servers' commands: `aar serve`, `aar tokens` and `aar manifest`, and one script per server.

`aar` (client/cli.py) stays the single entry point and hands these commands here; `aar-forum`,
`aar-storage`, `aar-sandbox` and `aar-pgr` each run one server, exactly as `aar serve NAME` with
the same flags, for clients that install one server (`uvx --from aar-lab aar-forum`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from servers import catalog
from servers.kit import manifest as manifests
from servers.kit.errors import ToolInputError
from servers.kit.hosting import configure_logging, serve_http, serve_stdio
from servers.kit.identity import TokenStore, validate_identity
from servers.kit.settings import Settings, get_settings


def local_user() -> str:
    """The local user's name made into a valid agent name (the stdio default identity)."""
    name = re.sub(r"[^a-z0-9_-]", "-", getpass.getuser().lower()).strip("-_") or "local"
    return name[:32]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve`, `tokens` and `manifest` to `aar`'s subcommands; each parsed command's `handler` runs it."""
    serve_parser = commands.add_parser("serve", help="Run a server over stdio (default) or streamable HTTP.")
    serve_parser.add_argument("name", choices=[*catalog.server_names(), "all"])
    _add_serve_options(serve_parser)
    serve_parser.set_defaults(handler=serve)

    tokens_parser = commands.add_parser("tokens", help="Create, list or revoke agents' bearer tokens.")
    tokens_parser.add_argument("action", choices=["create", "list", "revoke"])
    tokens_parser.add_argument("names", nargs="*", metavar="NAME")
    tokens_parser.set_defaults(handler=tokens)

    manifest_parser = commands.add_parser("manifest", help="Write manifests/servers/NAME/*.json from the live servers.")
    manifest_parser.add_argument(
        "action", choices=["export", "docs"], help="docs: write docs/tools/NAME.md from the manifests."
    )
    manifest_parser.add_argument("--check", action="store_true", help="Only compare; exit 1 on any drift.")
    manifest_parser.set_defaults(handler=manifest)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http", action="store_true", help="Serve over streamable HTTP (bearer tokens required).")
    parser.add_argument("--agent", help="Identity of the stdio caller (default: the local user).")
    parser.add_argument("--host", help="HTTP bind address (default AAR_HOST or 127.0.0.1).")
    parser.add_argument("--port", type=int, help="HTTP port (default AAR_PORT or 8700).")
    parser.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="Run sandbox commands WITHOUT bubblewrap (no isolation at all; never with untrusted agents).",
    )


def serve(args: argparse.Namespace) -> int:
    """`aar serve NAME`: one server over stdio, or one or all over HTTP, until stopped."""
    overrides: dict[str, Any] = {key: value for key, value in (("host", args.host), ("port", args.port)) if value}
    if args.unsafe_no_isolation:
        overrides["sandbox_unsafe_no_isolation"] = True
    settings = get_settings().model_copy(update=overrides)
    names = catalog.server_names() if args.name == "all" else [args.name]
    if not args.http:
        if args.name == "all":
            print("error: `aar serve all` needs --http (stdio carries one server per process)", file=sys.stderr)
            return 2
        agent = validate_identity(args.agent or local_user())
        return serve_stdio(args.name, catalog.factory(args.name)(settings, local_agent=agent), settings)
    servers = {name: catalog.factory(name)(settings) for name in names}
    return serve_http(servers, settings, json_response=catalog.ANSWERS_AT_ONCE, stateless=catalog.STATELESS)


def tokens(args: argparse.Namespace) -> int:
    """`aar tokens create|list|revoke NAME...`: the agents' bearer tokens in the identity database."""
    if args.action in ("create", "revoke") and not args.names:
        print(f"error: `aar tokens {args.action}` needs at least one NAME", file=sys.stderr)
        return 2
    return asyncio.run(_tokens(args.action, args.names))


async def _tokens(action: str, names: list[str]) -> int:
    store = await TokenStore.open(get_settings().identity_db)
    try:
        if action == "create":
            for name in names:
                token = await store.create(name)
                print(f"{name}\t{token}" if len(names) > 1 else token)
        elif action == "revoke":
            for name in names:
                if not await store.revoke(name):
                    print(f"no token for {name!r}", file=sys.stderr)
                    return 1
        else:
            for name in await store.agents():
                print(name)
    finally:
        await store.close()
    return 0


def manifest(args: argparse.Namespace) -> int:
    """`aar manifest export [--check]` and `aar manifest docs`: the server manifests and their reference pages."""
    if args.action == "docs":
        manifests.DOCS_DIR.mkdir(parents=True, exist_ok=True)
        for name in catalog.server_names():
            path = manifests.DOCS_DIR / f"{name}.md"
            path.write_text(manifests.reference(name))
            print(path)
        return 0
    return asyncio.run(_export(check=args.check))


async def _export(*, check: bool) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aar-manifest-") as scratch:
        settings = Settings(data_dir=Path(scratch))
        for name in catalog.server_names():
            live = await manifests.describe(name, catalog.factory(name)(settings, local_agent="manifest"))
            if check:
                problems = manifests.drift(name, live)
                for problem in problems:
                    print(f"{name}: {problem}", file=sys.stderr)
                failures += bool(problems)
            else:
                for path in manifests.write(name, live):
                    print(path)
    return 1 if failures else 0


def _serve_one(name: str, argv: list[str] | None) -> int:
    """`aar-NAME [flags]`, which is `aar serve NAME [flags]`."""
    configure_logging()
    parser = argparse.ArgumentParser(prog=f"aar-{name}", description=f"The {name} MCP server (as `aar serve {name}`).")
    _add_serve_options(parser)
    args = parser.parse_args(argv)
    args.name = name
    try:
        return serve(args)
    except ToolInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def forum(argv: list[str] | None = None) -> int:
    """The `aar-forum` script."""
    return _serve_one("forum", argv)


def storage(argv: list[str] | None = None) -> int:
    """The `aar-storage` script."""
    return _serve_one("storage", argv)


def sandbox(argv: list[str] | None = None) -> int:
    """The `aar-sandbox` script."""
    return _serve_one("sandbox", argv)


def pgr(argv: list[str] | None = None) -> int:
    """The `aar-pgr` script."""
    return _serve_one("pgr", argv)
