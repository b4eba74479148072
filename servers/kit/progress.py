"""Long tool calls keep their client waiting with MCP progress notifications.

Many clients give up on a request after 60 s of silence (`Request timed out`) unless progress
arrives, which resets their timer; a tool that may run longer than a few seconds awaits its work
through `with_progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mcp.server.mcpserver import Context

T = TypeVar("T")


async def with_progress(
    ctx: Context, work: Awaitable[T], *, every_s: float, total_s: float | None, say: Callable[[float], str]
) -> T:
    """Await `work`, reporting progress (seconds elapsed of `total_s`, and `say(elapsed)`) every `every_s`.

    A client that sent no progress token gets nothing (the SDK drops the report); cancelling the
    call cancels `work`.
    """
    task = asyncio.ensure_future(work)
    started = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every_s)
            if done:
                return task.result()
            elapsed = time.monotonic() - started
            await ctx.report_progress(round(elapsed, 1), total_s, say(elapsed))
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
