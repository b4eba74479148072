"""Where model calls go: Claude's Messages API, or the local scripted researcher's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


class BackendUnavailable(ValueError):
    """The backend asked for cannot run here (e.g. Claude without an API key)."""


@dataclass(frozen=True)
class BackendChoice:
    kind: Literal["anthropic", "scripted"]
    api_key: str | None
    base_url: str | None
    note: str
    """One line for the user saying which backend runs and why."""


def choose_backend(requested: str, environ: Mapping[str, str]) -> BackendChoice:
    """`auto` runs Claude when ANTHROPIC_API_KEY is set, else the scripted researcher.

    ANTHROPIC_BASE_URL is honoured for Claude.
    """
    key = environ.get("ANTHROPIC_API_KEY") or None
    base_url = environ.get("ANTHROPIC_BASE_URL") or None
    if requested == "scripted" or (requested == "auto" and key is None):
        why = "as asked" if requested == "scripted" else "no ANTHROPIC_API_KEY is set"
        return BackendChoice("scripted", None, None, f"backend: the built-in scripted researcher, offline ({why})")
    if key is None:
        raise BackendUnavailable("backend 'anthropic' needs ANTHROPIC_API_KEY in the environment")
    where = f" at {base_url}" if base_url else ""
    return BackendChoice("anthropic", key, base_url, f"backend: Claude through the Messages API{where}")
