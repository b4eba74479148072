"""A disk cache for what does not change between evaluations: features, weak labels, ceilings.

Entries are ``.npz`` files named by a hash of a JSON key (data hash + configuration + seed), so
changing the data or any setting misses the cache instead of returning stale numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = ["CacheMiss", "DiskCache", "key_digest"]

logger = logging.getLogger(__name__)


def key_digest(key: Mapping[str, object]) -> str:
    """A stable hash of a JSON-serialisable key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


class CacheMiss(LookupError):
    """An entry is not stored, and the cache was asked to read stored entries only."""


class DiskCache:
    """Arrays stored under ``root/<namespace>/<digest>.npz``; counts hits and misses."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self._stored_only: frozenset[str] = frozenset()

    @contextlib.contextmanager
    def stored_only(self, *namespaces: str) -> Iterator[None]:
        """Within this block a missing entry of these namespaces raises CacheMiss instead of being computed."""
        outer = self._stored_only
        self._stored_only = outer | frozenset(namespaces)
        try:
            yield
        finally:
            self._stored_only = outer

    def get_or_compute(
        self,
        namespace: str,
        key: Mapping[str, object],
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Load the entry for key, or compute it, store it atomically and return it."""
        path = self.root / namespace / f"{key_digest(key)}.npz"
        if path.exists():
            self.hits += 1
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files}
        if namespace in self._stored_only:
            raise CacheMiss(f"{namespace}/{path.name}")
        self.misses += 1
        value = {name: np.asarray(array) for name, array in compute().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **value)  # type: ignore[arg-type]  # mypy also matches **value against allow_pickle
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.debug("cached %s/%s", namespace, path.name)
        return value
