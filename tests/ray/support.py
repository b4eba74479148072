"""A Ray cluster of real nodes on this machine, and settings that send the servers' compute to it."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
WORKERS = ("node-a", "node-b")


def node_args(name: str) -> dict[str, Any]:
    """A worker node that takes official runs and agents' sandboxes, and advertises its own name (so a
    test can tell nodes apart and pin work to one)."""
    return {
        "num_cpus": 2,
        "num_gpus": 0,
        "resources": {"pgr_eval": 2, "sandbox": 8, name: 1},
        "node_ip_address": LOOPBACK,
        "object_store_memory": 100 * 1024 * 1024,
    }


@dataclass
class LocalCluster:
    """`ray.cluster_utils.Cluster` with a head (no CPUs: it runs no work) and named worker nodes."""

    cluster: Any
    nodes: dict[str, Any] = field(default_factory=dict)
    killed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls) -> LocalCluster:
        import ray
        from ray.cluster_utils import Cluster

        head = {"num_cpus": 0, "node_ip_address": LOOPBACK, "include_dashboard": False}
        local = cls(Cluster(initialize_head=True, head_node_args=head))
        for name in WORKERS:
            local.add(name)
        local.cluster.wait_for_nodes()
        ray.init(address=local.address, namespace="aar-lab", log_to_driver=False)
        return local

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str) -> None:
        self.nodes[name] = self.cluster.add_node(**node_args(name))

    def kill(self, name: str) -> None:
        """Kill a worker node's raylet and every worker process on it at once (as a machine failure would:
        left alone, Ray's workers notice their raylet's death only later, and answer calls meanwhile)."""
        node = self.nodes.pop(name)
        self.killed[name] = str(node.node_id)
        raylet = node.all_processes["raylet"][0].process.pid
        workers = _descendants(raylet)
        groups = {group for group in map(_group_of, workers) if group not in (None, os.getpgrp())}
        self.cluster.remove_node(node, allow_graceful=False)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for group in groups:  # a half-started bwrap whose parent just died waits forever otherwise
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].node_id)

    def id_before_kill(self, name: str) -> str:
        return self.killed[name]

    def worker_ids(self) -> set[str]:
        return {str(node.node_id) for node in self.nodes.values()}

    def name_of(self, node_id: str) -> str:
        return next(name for name, node in self.nodes.items() if str(node.node_id) == node_id)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()

    def settings(self, data_dir: Path) -> dict[str, Any]:
        """Settings overrides that send a server's compute to this cluster (node folders beside data_dir)."""
        return {"executor": "ray", "ray_address": self.address, "ray_node_dir": data_dir.parent / "nodes"}


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: children first found by their parent's id)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += children
    return found
