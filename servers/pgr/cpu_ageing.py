"""A submission's runs yield the CPU to younger submissions' as it ages (least attained service first).

Two submissions are scored at once (AAR_PGR_PARALLEL_SUBMISSIONS), each run in a cgroup of its own.
At equal CPU weights a method that keeps every core it is given busy until its time limit halves
the speed of the other submission's runs, and with it every other agent's wait for a score. So a
submission's runs keep the full weight for its first `full_for_s` seconds (a tenth of the time
limit: longer than an ordinary submission takes), and after that their weight falls with the
square of its age: at three times that age a ninth, at ten times a hundredth. The kernel's
scheduler stays work-conserving: an old submission's runs still get every cycle that no younger
one wants, so an honest long submission alone on the machine runs at full speed. The same age
decides the queue's places (servers.pgr.submissions): only a young submission holds one.
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.sandbox.cgroups import CPU_WEIGHT

__all__ = ["FULL_CPU_FRACTION", "CpuAgeing"]

FULL_CPU_FRACTION = 0.1
"""The part of a submission's time limit for which its runs keep the full CPU weight."""
TICK_S = 5.0
"""How often a running run's weight is brought up to date."""


@dataclass(frozen=True)
class CpuAgeing:
    """The CPU weight of a submission's runs as a function of the time, from when it started."""

    started_at: float
    """Wall-clock time (time.time()) at which the submission started: runs on other nodes read the same clock."""
    full_for_s: float

    def young(self, now: float) -> bool:
        """Still at the full weight: the worker counts such a submission as holding a scoring place."""
        return now - self.started_at <= self.full_for_s

    def weight(self, now: float) -> int:
        """cgroup v2's scale: CPU_WEIGHT (every agent's) while young, then falling with the square of the age."""
        if self.young(now):
            return CPU_WEIGHT
        return max(1, round(CPU_WEIGHT * (self.full_for_s / (now - self.started_at)) ** 2))
