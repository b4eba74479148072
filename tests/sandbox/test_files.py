"""The file tools: workspace-relative paths, large files in parts, listings, snapshot export and import."""

from __future__ import annotations

import pytest

from servers.sandbox import Sandbox, SandboxConfig
from servers.sandbox.errors import NotFoundError, PathError, QuotaError, ToolInputError
from servers.sandbox.paths import split_path, validate_agent

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("agent", ["", "Alice", "-x", "a" * 33, "a/b", "../x", "a b", "é"])
def test_bad_agent_names_are_refused(agent: str) -> None:
    with pytest.raises(ToolInputError, match="invalid agent name"):
        validate_agent(agent)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "x\0y", "x\ny", "a" * 1100])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(PathError):
        split_path(path)


def test_paths_are_normalised() -> None:
    assert split_path("./a//b/./c.txt") == ("a", "b", "c.txt")
    assert split_path(".", allow_root=True) == ()


async def test_write_read_list(sandbox: Sandbox) -> None:
    await sandbox.write_file("alice", "runs/a/notes.txt", "hello")
    await sandbox.write_file("alice", "data.bin", bytes(range(256)) * 4096)
    chunk = await sandbox.read_file("alice", "data.bin", offset=1000, limit=10)
    assert chunk.data == bytes((1000 + n) % 256 for n in range(10)) and chunk.size == 1024 * 1024 and not chunk.eof
    tail = await sandbox.read_file("alice", "data.bin", offset=1024 * 1024 - 5)
    assert len(tail.data) == 5 and tail.eof
    assert (await sandbox.read_file("alice", "runs/a/notes.txt")).text == "hello"
    listing = await sandbox.list_files("alice", ".", recursive=True)
    assert [(entry.path, entry.kind) for entry in listing.entries] == [
        ("data.bin", "file"),
        ("runs", "dir"),
        ("runs/a", "dir"),
        ("runs/a/notes.txt", "file"),
    ]
    assert [entry.path for entry in (await sandbox.list_files("alice", "runs")).entries] == ["runs/a"]
    result = await sandbox.exec("alice", "cat runs/a/notes.txt && echo more >> runs/a/notes.txt")
    assert result.stdout == "hello"
    assert (await sandbox.read_file("alice", "runs/a/notes.txt")).text == "hellomore\n"
    with pytest.raises(NotFoundError):
        await sandbox.read_file("alice", "missing.txt")
    with pytest.raises(PathError, match="is a directory"):
        await sandbox.write_file("alice", "runs", "x")
    with pytest.raises(PathError, match="not a regular file"):
        await sandbox.read_file("alice", "runs")


async def test_write_limits(sandbox: Sandbox) -> None:
    with pytest.raises(QuotaError, match="at most 16 MiB"):
        await sandbox.write_file("alice", "huge.bin", b"\0" * (17 * 1024 * 1024))


async def test_export_and_import_round_trip(sandbox: Sandbox) -> None:
    await sandbox.write_file("alice", "src/method.py", "def method(): ...\n")
    await sandbox.write_file("alice", "src/sub/util.py", "X = 1\n")
    await sandbox.write_file("alice", "results.json", "{}")
    await sandbox.write_file("alice", "scratch.bin", b"\1\2")
    exported = await sandbox.export_files("alice", ["src", "results.json"])
    assert exported == {"src/method.py": b"def method(): ...\n", "src/sub/util.py": b"X = 1\n", "results.json": b"{}"}
    written = await sandbox.import_files("bob", {**exported, "notes.md": "text"})
    assert written == ["notes.md", "results.json", "src/method.py", "src/sub/util.py"]
    assert (await sandbox.exec("bob", "cat src/sub/util.py notes.md")).stdout == "X = 1\ntext"
    with pytest.raises(PathError):
        await sandbox.import_files("bob", {"ok.txt": "fine", "../evil.txt": "x"})
    assert "ok.txt" not in [entry.path for entry in (await sandbox.list_files("bob")).entries]  # all checked first


async def test_a_removed_workspace_is_gone_and_starts_empty_again(sandbox: Sandbox, config: SandboxConfig) -> None:
    outside = config.root.parent / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    await sandbox.write_file("sub_1", "inputs/a.txt", "x")
    await sandbox.exec("sub_1", "mkdir -p deep/er && echo y > deep/er/b")
    (config.root / "workspaces" / "sub_1" / "out").symlink_to(outside)
    await sandbox.remove_workspace("sub_1")
    assert not (config.root / "workspaces" / "sub_1").exists()
    assert (outside / "keep.txt").read_text() == "kept"  # the link was removed, not followed
    assert (await sandbox.list_files("sub_1")).entries == []
