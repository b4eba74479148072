"""A PGR server starts from what is cached: the reference method's scores (the transfer check's
yardstick) are trained once per task and testbed, not by every server over a new data directory, and a
server whose texts are all embedded prepares its task seeds without the preparation's child process."""

from __future__ import annotations

from pathlib import Path

from servers.pgr.precompute import cached_reference_means, reference_means
from servers.pgr.testbed import TaskBench
from tests.support import W2S_CACHE, shipped_tasks


def _cache_sharing_features(folder: Path) -> Path:
    """A fresh cache whose features and weak labels are the tests' shared ones (no embedding again)."""
    folder.mkdir()
    for namespace in ("features", "weak", "ceiling"):
        (W2S_CACHE / namespace).mkdir(parents=True, exist_ok=True)
        (folder / namespace).symlink_to(W2S_CACHE / namespace)
    return folder


def test_the_reference_is_trained_once_and_read_from_the_cache_by_the_next_server(tmp_path: Path) -> None:
    tasks = shipped_tasks(tmp_path / "tasks", "negation")
    cache = _cache_sharing_features(tmp_path / "cache")
    bench = TaskBench(tasks, None, cache, 1, b"one server")
    assert cached_reference_means(bench) is None  # nothing yet: it must be trained
    assert not (cache / "reference").exists()

    means = reference_means(bench)
    assert set(means) == {"negation"} and -1 < means["negation"] < 2
    another = TaskBench(tasks, None, cache, 1, b"another server, another secret")
    assert cached_reference_means(another) == means
    assert cached_reference_means(TaskBench(tasks, None, cache, 2, b"k")) is None  # more seeds: another score

    [entry] = (cache / "reference").iterdir()
    written = entry.stat()
    assert reference_means(another) == means
    again = entry.stat()  # read, not trained and stored again (a new entry replaces the file)
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_a_server_whose_features_are_cached_prepares_in_process_and_a_cold_one_embeds_nothing_there(
    tmp_path: Path,
) -> None:
    tasks = shipped_tasks(tmp_path / "tasks", "negation")
    cold = tmp_path / "cold-cache"
    assert not TaskBench(tasks, None, cold, 1, b"key").prepare_with_cached_features(lambda: None)
    assert not any((cold / "features").glob("*"))  # embedding is left to the preparation's child process

    cache = _cache_sharing_features(tmp_path / "cache")
    first = TaskBench(tasks, None, cache, 1, b"the first server's secret")
    negation = first.tasks["negation"]
    first.testbed.features(negation, negation.spec.strong)  # embedded once, for every server after
    prepared: list[None] = []
    another = TaskBench(tasks, None, cache, 1, b"a new server's own secret: its own decoys")
    assert another.prepare_with_cached_features(lambda: prepared.append(None))
    assert len(prepared) == len(another.seeds)
