"""Drives servers as a third-party client would: the Python MCP SDK 1.x, from client config blocks.

Runs under its own interpreter (a venv with `mcp<2`), never imported by the test suite. Reads a
plan on stdin: [{"name", "block" (a Claude Desktop or Claude Code entry), "call" ({"tool", "arguments"}
or null)}]; prints, per entry, what the server said: its name, its tools, and the call's result.
`${VAR}` in an HTTP block's headers is expanded from the environment, as Claude Code does.
"""

import asyncio
import json
import os
import sys
from datetime import timedelta

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

TIMEOUT = timedelta(seconds=60)
"""The request timeout most clients use: a tool call must answer (or report progress) within it."""


async def drive(session, call):
    initialized = await session.initialize()
    tools = await session.list_tools()
    answer = {"server": initialized.serverInfo.name, "tools": sorted(tool.name for tool in tools.tools)}
    if call is not None:
        result = await session.call_tool(call["tool"], call["arguments"])
        answer["call"] = {
            "is_error": result.isError,
            "structured": result.structuredContent,
            "text": " ".join(getattr(part, "text", "") for part in result.content),
        }
    return answer


async def connect(block, call):
    if "url" in block:
        headers = {key: os.path.expandvars(value) for key, value in block.get("headers", {}).items()}
        async with (
            streamablehttp_client(block["url"], headers=headers) as (read, write, _),
            ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session,
        ):
            return await drive(session, call)
    params = StdioServerParameters(command=block["command"], args=block["args"], env=block.get("env"))
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session,
    ):
        return await drive(session, call)


async def main():
    plan = json.load(sys.stdin)
    answers = {}
    for entry in plan:
        try:
            answers[entry["name"]] = await connect(entry["block"], entry["call"])
        except Exception as error:  # reported per entry, so one failure does not hide the others
            answers[entry["name"]] = {"failure": f"{type(error).__name__}: {error!r}"}
    print(json.dumps(answers))


if __name__ == "__main__":
    asyncio.run(main())
