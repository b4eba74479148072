"""Joining the Ray cluster from a server process on the head, once per process.

Ray is an optional extra (`pip install 'aar-lab[ray]'`): nothing imports it under the default
local executor. The servers join as drivers in one namespace, so that named actors (the agents'
sandboxes) outlive a server restart and are found again by name.
"""

from __future__ import annotations

import importlib.util
import logging
import threading

from servers.kit.settings import Settings

__all__ = ["NAMESPACE", "connect", "missing_capacity"]

logger = logging.getLogger(__name__)

NAMESPACE = "aar-lab"
_lock = threading.Lock()


def connect(settings: Settings) -> None:
    """Join the cluster at AAR_RAY_ADDRESS (blocking: call it off the event loop)."""
    if importlib.util.find_spec("ray") is None:
        raise RuntimeError(
            "AAR_EXECUTOR=ray needs Ray: install the extra with pip install 'aar-lab[ray]' (or set AAR_EXECUTOR=local)"
        )
    import ray

    with _lock:
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=settings.ray_address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except ConnectionError as error:
            raise RuntimeError(
                f"no Ray cluster at AAR_RAY_ADDRESS={settings.ray_address!r} ({error}); start one with"
                " `ray start --head` (docs/cluster.md) or set AAR_EXECUTOR=local"
            ) from None
        logger.info("joined the Ray cluster at %s: %s", settings.ray_address, ray.cluster_resources())  # type: ignore[no-untyped-call]  # ray is unannotated


def missing_capacity(resource: str, gpus: float, setting: str) -> str | None:
    """Why no live node can hold a task needing one `resource` and `gpus` GPUs (None if one can).

    Ray leaves an infeasible task pending forever, so callers refuse it at once with this reason.
    """
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]  # type: ignore[no-untyped-call]  # ray is unannotated
    if any(r.get(resource, 0) >= 1 and r.get("GPU", 0) >= gpus for r in nodes):
        return None
    most = max((r.get("GPU", 0) for r in nodes if r.get(resource, 0) >= 1), default=0)
    return (
        f"no live cluster node with a '{resource}' resource has {gpus:g} GPUs (the most is {most:g});"
        f" lower {setting} or add nodes (docs/cluster.md)"
    )
