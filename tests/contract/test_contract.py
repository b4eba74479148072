"""Every declared tool, through every transport: listed as declared, valid calls validate
against the output schema, invalid calls fail with a message that names the problem and
change nothing stored."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from mcp import Client

from servers import catalog
from servers.kit import manifest
from tests.contract.cases import CASES, PREPARE
from tests.support import fingerprint, memory_client, running_http_server, stdio_client

pytestmark = pytest.mark.anyio


def test_every_declared_tool_has_a_contract_case() -> None:
    for name in catalog.server_names():
        declared = {tool["name"] for tool in manifest.load(name)["tools"]}
        assert declared == set(CASES[name]), f"{name}: add a case to tests/contract/cases.py for each tool"
        for tool, case in CASES[name].items():
            assert case.invalid, f"{name}.{tool} needs at least one invalid call"


async def run_contract(client: Client, server: str, data_dir: Path) -> None:
    declared = {tool["name"]: tool for tool in manifest.load(server)["tools"]}
    listed = await client.list_tools()
    live = {tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools}
    assert live == declared, f"{server}: the live tool list differs from manifests/servers/{server}/lock.json"

    context = await PREPARE[server](client, data_dir)
    for tool, case in CASES[server].items():
        if case.valid is not None:
            result = await client.call_tool(tool, case.valid(context))
            assert not result.is_error, f"{server}.{tool} valid call failed: {result.content}"
            jsonschema.validate(result.structured_content, declared[tool]["outputSchema"])

        for make_args, expected in case.invalid:
            before = fingerprint(server, data_dir)
            result = await client.call_tool(tool, make_args(context))
            message = " ".join(getattr(part, "text", "") for part in result.content)
            assert result.is_error, f"{server}.{tool}{make_args(context)} should have failed"
            assert expected in message, f"{server}.{tool}: error {message!r} does not mention {expected!r}"
            assert fingerprint(server, data_dir) == before, f"{server}.{tool}: a failed call changed stored data"


@pytest.mark.parametrize("server", catalog.server_names())
async def test_contract_in_memory(server: str, data_dir: Path) -> None:
    async with memory_client(server, data_dir) as client:
        await run_contract(client, server, data_dir)


@pytest.mark.parametrize("server", catalog.server_names())
async def test_contract_over_stdio(server: str, data_dir: Path) -> None:
    async with stdio_client(server, data_dir) as client:
        await run_contract(client, server, data_dir)


async def test_contract_over_http_with_tokens(data_dir: Path) -> None:
    with running_http_server(data_dir) as http:
        for server in catalog.server_names():
            async with http.client(server, "alice") as client:
                await run_contract(client, server, data_dir)
