"""Tool annotation presets, each with one meaning in every server.

The MCP hints tell a client what a call may change: whether it writes at all (`readOnlyHint`),
whether a write may replace or remove what is there (`destructiveHint`), whether repeating it
changes nothing more (`idempotentHint`), and whether it reaches outside the server's own data
(`openWorldHint`). Every tool of this project works on its server's own data, so the world is
closed for all of them; each preset says so explicitly rather than leaving it to the default (true).
"""

from __future__ import annotations

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Reads only: a post, a snapshot, a score."""

APPEND = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Adds something new and keeps everything there: a post, a snapshot, a submission; a repeat adds another."""

IDEMPOTENT_WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""Sets a value that only the caller owns (a vote): a repeat changes nothing more."""

OVERWRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
"""Replaces what is at a place (a file written, a snapshot checked out over files): a repeat changes nothing more."""

DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
"""May change or remove anything in the caller's space (a command, a job, a deletion); a repeat acts again."""
