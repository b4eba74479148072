"""Helpers of the sandbox tests: planted labels, small limits, finding processes on the host."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any

from servers.sandbox import SandboxConfig, SandboxLimits

HIDDEN_LABELS = ("zqx-hidden-label-7f3a9c", "zqx-hidden-label-b81e44")
"""Distinctive strings planted where labels live (data dir, task pack); no sandbox may ever find them."""

TEST_LIMITS = SandboxLimits(
    exec_timeout_s=30.0,
    memory_mib=256,
    max_processes=64,
    file_size_mib=16,
    workspace_mib=48,
    workspace_max_files=2000,
    tmp_mib=16,
    output_bytes=64 * 1024,
    job_log_bytes=256 * 1024,
    kill_grace_s=1.0,
    workspace_poll_s=0.2,
)


def with_limits(config: SandboxConfig, **changes: Any) -> SandboxConfig:
    return replace(config, limits=replace(config.limits, **changes))


def processes_with(token: str) -> list[int]:
    """Host pids whose command line contains `token` (any namespace: the host sees them all)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    if token.encode() in handle.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


async def wait_until_gone(token: str, timeout_s: float = 10.0) -> list[int]:
    """Poll (bounded) until no process carries `token`; returns the survivors, if any."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_with(token)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left
