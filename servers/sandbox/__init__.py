"""The sandbox server's isolation and job layer: per-agent workspaces, commands under bubblewrap, jobs."""

from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import IsolationUnavailableError
from servers.sandbox.limits import Limit, SandboxLimits
from servers.sandbox.service import ExecResult, Sandbox
from servers.sandbox.workspace import Listing

__all__ = [
    "ExecResult",
    "IsolationUnavailableError",
    "Limit",
    "Listing",
    "Sandbox",
    "SandboxConfig",
    "SandboxLimits",
]
