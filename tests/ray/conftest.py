"""One real multi-node Ray cluster on loopback, shared by every test here (it takes ~20 s to start).

A head that runs nothing (no CPUs) and two worker nodes with distinct resources, each a real raylet
with its own worker processes, all on 127.0.0.1 with no dashboard. The suite is skipped where the
`ray` extra is not installed (`pip install 'aar-lab[ray]'`).
"""

from __future__ import annotations

import importlib.util
import os

# Ray resolves 127.0.0.1 to the machine's outward address when a driver joins; this keeps every
# connection on loopback (it must be set before ray is imported).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# A secret in the environment every node (and so every Ray worker) inherits: no sandbox may read it.
CANARY = "AAR_TEST_CANARY_SECRET=canary-3f9d2c"
os.environ[CANARY.split("=")[0]] = CANARY.split("=")[1]

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.ray.support import LocalCluster  # noqa: E402

if importlib.util.find_spec("ray") is None:  # the `ray` extra is not installed: nothing here can run
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster.start()
    try:
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(autouse=True)
def no_leftover_sandboxes(ray_cluster: LocalCluster) -> Iterator[None]:
    """Agents' sandbox actors are detached (they outlive a server): end each test's own."""
    yield
    import ray

    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["name"].startswith("sandbox-"):
            ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
