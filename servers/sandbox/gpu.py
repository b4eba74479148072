"""Sharing the machine's GPUs between sandboxed commands: device nodes to bind, one GPU per command.

Every configured GPU node is bound (plus the driver's control nodes) and each command gets one GPU
through CUDA_VISIBLE_DEVICES, round-robin, so nine agents spread over a multi-GPU machine; a job
that asks for more gets that many consecutive ones (or none, if it asks for 0). This
assigns rather than fences: a hostile command could still open another bound GPU, which costs
compute but reveals no data. Configured nodes that do not exist are dropped with a warning, so the
same settings are harmless on a machine without GPUs (commands then see no GPU at all).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Sequence

from servers.sandbox.errors import CapacityError

logger = logging.getLogger(__name__)

CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
_INDEX = re.compile(r"(\d+)$")


class GpuPool:
    """Round-robin assignment of the configured GPU device nodes that exist here."""

    def __init__(self, devices: Sequence[str]) -> None:
        present = [device for device in devices if os.path.exists(device)]
        for device in sorted(set(devices) - set(present)):
            logger.warning("configured GPU device %s does not exist here; ignored", device)
        self.devices = tuple(present)
        self._indices = [_INDEX.search(device) for device in self.devices]
        self._next = itertools.cycle(range(len(self.devices))) if self.devices else None

    def assign(self, count: int | None = None) -> str | None:
        """The CUDA_VISIBLE_DEVICES value for the next command: `count` GPUs (None: one where there are
        any, else None; 0: an empty value, no GPU). Check `count` with `check` first."""
        if count is None and self._next is None:
            return None
        wanted = 1 if count is None else count
        if self._next is None or wanted == 0:
            return ""
        picked = [self._indices[next(self._next)] for _ in range(min(wanted, len(self.devices)))]
        return ",".join(match.group(1) if match else "0" for match in picked)

    def check(self, count: int) -> None:
        """Refuse a command asking for more GPUs than this pool has, naming the setting to change."""
        if count > len(self.devices):
            raise CapacityError(
                f"this job asks for {count} GPUs but this sandbox has {len(self.devices)}"
                " (setting AAR_SANDBOX_GPU_DEVICES, the GPUs the operator gave the sandbox);"
                f" ask for at most {len(self.devices)}"
            )

    def bind_args(self) -> list[str]:
        """bwrap arguments binding the GPU nodes and the driver's control nodes (nothing without GPUs)."""
        if not self.devices:
            return []
        nodes = [*self.devices, *(node for node in CONTROL_NODES if os.path.exists(node))]
        return [arg for node in nodes for arg in ("--dev-bind", node, node)]
