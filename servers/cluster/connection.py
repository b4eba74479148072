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

__all__ = ["NAMESPACE", "connect"]

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
