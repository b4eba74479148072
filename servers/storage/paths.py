"""Validation of file paths inside a snapshot: relative, normalised, never into `.git`."""

from __future__ import annotations

from servers.kit.errors import ToolInputError

MAX_PATH_CHARS = 255


def validate_path(path: str) -> str:
    """Return `path` if it is a safe relative file path in a snapshot, else explain what is wrong."""
    problem = _problem(path)
    if problem:
        raise ToolInputError(f"invalid path {path!r}: {problem}; use a relative path such as 'src/method.py'")
    return path


def _problem(path: str) -> str | None:
    if not path:
        return "it is empty"
    if len(path) > MAX_PATH_CHARS:
        return f"it is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/"):
        return "absolute paths are not allowed"
    if "\\" in path or any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        return "it contains a backslash or a control character"
    parts = path.split("/")
    if any(part == "" for part in parts):
        return "it has an empty component (a doubled or trailing '/')"
    if any(part in (".", "..") for part in parts):
        return "'.' and '..' are not allowed"
    if any(part.lower() == ".git" for part in parts):
        return "nothing may be stored under '.git'"
    return None
