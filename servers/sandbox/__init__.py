"""The sandbox server's isolation and job layer: per-agent workspaces, commands under bubblewrap, jobs."""

from servers.sandbox.config import SandboxConfig
from servers.sandbox.errors import IsolationUnavailableError
from servers.sandbox.limits import Limit, SandboxLimits
from servers.sandbox.service import ExecResult, FileListing, Sandbox

__all__ = [
    "ExecResult",
    "FileListing",
    "IsolationUnavailableError",
    "Limit",
    "Sandbox",
    "SandboxConfig",
    "SandboxLimits",
]
