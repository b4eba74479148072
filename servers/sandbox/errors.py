"""What the sandbox tells a calling agent when it refuses a call, and why the service will not start.

Call errors derive from the kit's tool errors so an MCP tool passes their text to the agent
verbatim; each message says what was wrong and what to do instead.
"""

from __future__ import annotations

from servers.kit.errors import NotFoundError, ToolInputError

__all__ = [
    "CapacityError",
    "IsolationUnavailableError",
    "NotFoundError",
    "PathError",
    "QuotaError",
    "ToolInputError",
]


class PathError(ToolInputError):
    """A workspace path is malformed or would leave the workspace."""


class QuotaError(ToolInputError):
    """The call would exceed a size limit of the workspace or of a single file."""


class CapacityError(ToolInputError):
    """The agent (or the whole service) already runs as many commands or jobs as it may."""


class IsolationUnavailableError(RuntimeError):
    """bubblewrap cannot build a sandbox on this machine, so the service refuses to start."""
