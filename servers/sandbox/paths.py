"""Agent names and workspace-relative paths, resolved without ever following a symbolic link.

The workspace is writable by sandboxed commands, so any component of a path may be a symlink
planted by an earlier command (say `out -> /srv/data`). Every file operation of the service
therefore walks the path one component at a time with openat(O_NOFOLLOW) from a descriptor of
the workspace root: a symlink anywhere in the path is refused, not resolved, and no check can be
raced by swapping a directory for a link between check and use.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from servers.kit.names import AGENT_NAME
from servers.sandbox.errors import NotFoundError, PathError, ToolInputError

MAX_PATH_CHARS = 1024
MAX_COMPONENT_CHARS = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def validate_agent(agent: str) -> str:
    """Return `agent` if it is a valid agent name (it names directories, so it is strict)."""
    if not isinstance(agent, str) or not AGENT_NAME.fullmatch(agent):
        raise ToolInputError(
            f"invalid agent name {agent!r}: use 1-32 of a-z, 0-9, '_' and '-', starting with a letter or digit"
        )
    return agent


def split_path(path: str, *, allow_root: bool = False) -> tuple[str, ...]:
    """The components of a workspace-relative `path` ('.' and empty ones dropped), or PathError."""
    if not isinstance(path, str):
        raise PathError(f"invalid path {path!r}: it must be a string")
    problem = _problem(path)
    if problem:
        raise PathError(f"invalid path {path!r}: {problem}; use a path relative to the workspace such as 'runs/a.py'")
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if not parts and not allow_root:
        raise PathError(f"invalid path {path!r}: it names the workspace itself, not a file")
    return parts


def _problem(path: str) -> str | None:
    if len(path) > MAX_PATH_CHARS:
        return f"it is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/"):
        return "absolute paths are not allowed"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return "it contains a control character"
    parts = path.split("/")
    if any(part == ".." for part in parts):
        return "'..' is not allowed"
    if any(len(part.encode()) > MAX_COMPONENT_CHARS for part in parts):
        return f"a component is longer than {MAX_COMPONENT_CHARS} bytes"
    return None


@contextmanager
def open_root(root: str) -> Iterator[int]:
    """A descriptor of the workspace root directory, closed on exit."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_dir(root_fd: int, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
    """A descriptor of the directory `parts` under `root_fd`, walked without following links."""
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            try:
                next_fd = _open_component(fd, part, create)
            except OSError as error:
                raise explain(error, "/".join(parts[: index + 1])) from None
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _open_component(dir_fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    with suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def explain(error: OSError, shown: str) -> Exception:
    """Turn an errno from a no-follow open of `shown` into a message for the agent."""
    if error.errno == errno.ENOENT:
        return NotFoundError(f"no such file or directory in the workspace: {shown!r}")
    if error.errno == errno.ELOOP:
        return PathError(
            f"{shown!r} is a symbolic link; the file tools never follow links (inside exec they work as usual)"
        )
    if error.errno == errno.ENOTDIR:
        return PathError(f"{shown!r} is not a directory (or is a symbolic link, which the file tools never follow)")
    return PathError(f"cannot open {shown!r}: {os.strerror(error.errno or 0)}")
