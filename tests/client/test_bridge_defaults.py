"""The run manifest's argument defaults reach the real server: an agent's job gets the manifest's GPUs
unless the model names its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.bridge import ToolBridge
from client.run_manifest import ToolCatalogue
from tests.support import running_http_server

pytestmark = pytest.mark.anyio


async def test_a_job_gets_the_manifests_gpus_unless_the_model_names_its_own(data_dir: Path) -> None:
    with running_http_server(data_dir) as server:
        bridge = ToolBridge(
            urls={"sandbox": server.url("sandbox")},
            token=server.token("alice"),
            allowed=["sandbox__start_job"],
            catalogue=ToolCatalogue.load(),
            tool_timeout_s=60,
            reconnect_s=30,
            defaults={"sandbox__start_job": {"gpus": 1}},
        )
        async with bridge.running():
            defaulted = await bridge.call("sandbox__start_job", {"name": "train", "command": "true"})
            chosen = await bridge.call("sandbox__start_job", {"name": "cpu", "command": "true", "gpus": 0})
    assert defaulted.is_error and "asks for 1 GPUs but this sandbox has 0" in defaulted.text  # this machine has none
    assert not chosen.is_error and chosen.structured is not None and chosen.structured["gpus"] == 0
