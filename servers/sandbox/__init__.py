"""The sandbox server's isolation and job layer: per-agent workspaces, commands under bubblewrap, jobs."""

from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import IsolationUnavailableError
from servers.sandbox.limits import Limit, SandboxLimits
from servers.sandbox.store import Sandbox

__all__ = [
    "IsolationUnavailableError",
    "Limit",
    "Sandbox",
    "SandboxConfig",
    "SandboxLimits",
]
