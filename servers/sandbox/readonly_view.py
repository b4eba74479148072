"""The read-only part of the filesystem a sandboxed command sees: exposed host paths minus hidden ones.

A hidden path inside an exposed tree (say /usr/share/wordnet inside /usr) is not masked with an
empty directory but left out: the tree is split into its children, each bound on its own, down to
the hidden entry, so the hidden path is absent inside. Symbolic links in the split levels are
recreated as links, so whatever they point at resolves inside the sandbox's own view.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)


def _under(path: str, root: str) -> bool:
    return path == root or PurePosixPath(path).is_relative_to(root)


def view_args(exposed: Iterable[str], hidden: Iterable[str]) -> list[str]:
    """bwrap arguments that mount every `exposed` path read-only at its own place, minus `hidden`."""
    hidden = tuple(os.path.normpath(path) for path in hidden if os.path.lexists(path))
    args: list[str] = []
    for path in dict.fromkeys(os.path.normpath(path) for path in exposed):
        _expose(path, hidden, args)
    return args


def _expose(path: str, hidden: tuple[str, ...], args: list[str]) -> None:
    if any(_under(path, secret) for secret in hidden):
        return
    if os.path.islink(path):
        args += ["--symlink", os.readlink(path), path]
    elif not os.path.exists(path):
        logger.debug("view: %s does not exist, not exposed", path)
    elif os.path.isdir(path) and any(_under(secret, path) for secret in hidden):
        args += ["--dir", path]
        for name in sorted(os.listdir(path)):
            _expose(os.path.join(path, name), hidden, args)
    else:
        args += ["--ro-bind", path, path]


def exposed_sources(args: list[str]) -> list[str]:
    """The host paths that `view_args` output binds (for checking that nothing private is among them)."""
    return [args[index + 1] for index, arg in enumerate(args) if arg == "--ro-bind"]
