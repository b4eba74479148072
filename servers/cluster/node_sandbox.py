"""A sandbox service on a Ray worker node: the head's sandbox settings, this node's disk and GPUs.

Ray isolates nothing, so every command a cluster runs still goes through servers.sandbox (bubblewrap,
limits, an empty environment) on the node that runs it. The settings travel from the head; the data
folder is node-local (AAR_RAY_NODE_DIR) and the GPUs are the ones Ray assigned to this worker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from servers.sandbox.config import SandboxConfig
from servers.sandbox.store import Sandbox

__all__ = ["NodeSandboxSpec", "open_node_sandbox"]


@dataclasses.dataclass(frozen=True)
class NodeSandboxSpec:
    """What a worker needs to open a sandbox: the head's config (paths as installed on every node)."""

    config: SandboxConfig
    unsafe_no_isolation: bool


async def open_node_sandbox(spec: NodeSandboxSpec, data_dir: Path) -> Sandbox:
    """Open a sandbox over `data_dir` on this node, bound to the GPUs Ray gave the calling worker."""
    import ray

    gpus = tuple(f"/dev/nvidia{int(index)}" for index in ray.get_gpu_ids())
    config = dataclasses.replace(spec.config, data_dir=data_dir, gpu_devices=gpus)
    return await Sandbox.open(config, unsafe_no_isolation=spec.unsafe_no_isolation)
