"""One agent's workspace directory: the file operations the service performs on it from outside.

Everything goes through `paths` (no-follow walks from a root descriptor). Files are never written
in place: new content goes to a fresh temporary file that is then renamed over the target, so a
planted hard link or FIFO at the target name is replaced rather than written through or blocked on.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from servers.sandbox.errors import PathError, QuotaError
from servers.sandbox.limits import MIB, SandboxLimits, naming
from servers.sandbox.models import FileList, ListedFile
from servers.sandbox.paths import explain, open_dir, open_root, split_path

MAX_DEPTH = 64
QUICK_MAX_ENTRIES = 5000
QUICK_MAX_DEPTH = 32
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class FileChunk:
    """Bytes [offset, offset + len(data)) of a file of `size` bytes; `eof` when nothing follows."""

    path: str
    offset: int
    data: bytes
    size: int
    eof: bool

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Usage:
    """Disk space (allocated bytes) and number of entries a workspace holds."""

    bytes: int
    files: int


class Workspace:
    """The directory `root`, seen as /workspace inside the sandbox; `logs` holds its owner's job logs,
    which count toward the same disk quota."""

    def __init__(self, root: Path, limits: SandboxLimits, logs: Path | None = None) -> None:
        self.root = root
        self.logs = logs
        self._limits = limits

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete the workspace and everything in it (links are removed, never followed)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def write(self, path: str, content: bytes) -> int:
        """Create or replace the file at `path`, creating parent directories; returns its size."""
        parts = split_path(path)
        if len(content) > self._limits.write_max_bytes:
            raise QuotaError(
                f"{len(content)} bytes is more than one write may carry ({self._limits.write_max_bytes}); "
                "write in parts or generate the file with exec" + naming("write_max_bytes")
            )
        self._check_room(len(content))
        with open_root(str(self.root)) as root_fd:
            self._write_at(root_fd, parts, content)
        return len(content)

    def read(self, path: str, offset: int = 0, limit: int | None = None) -> FileChunk:
        """Up to `limit` bytes (capped by read_max_bytes) from `offset` of the regular file `path`."""
        parts = split_path(path)
        if offset < 0:
            raise PathError(f"offset must be >= 0, not {offset}")
        cap = self._limits.read_max_bytes
        limit = cap if limit is None else max(0, min(limit, cap))
        with open_root(str(self.root)) as root_fd, open_dir(root_fd, parts[:-1]) as dir_fd:
            fd = self._open_regular(dir_fd, parts[-1], path)
            try:
                size = os.fstat(fd).st_size
                data = os.pread(fd, limit, offset)
            finally:
                os.close(fd)
        return FileChunk(path="/".join(parts), offset=offset, data=data, size=size, eof=offset + len(data) >= size)

    def list(self, path: str = ".", recursive: bool = False, offset: int = 0, limit: int | None = None) -> FileList:
        """Entries `offset` to `offset + limit` under directory `path`, in a stable order (sorted, depth first);
        `limit` is capped by list_max_entries."""
        parts = split_path(path, allow_root=True)
        if offset < 0:
            raise PathError(f"offset must be >= 0, not {offset}")
        cap = self._limits.list_max_entries
        limit = cap if limit is None else max(1, min(limit, cap))
        entries: list[ListedFile] = []
        with open_root(str(self.root)) as root_fd:
            for position, entry in enumerate(_walk(root_fd, parts, recursive)):
                if position < offset:
                    continue
                if len(entries) == limit:
                    return FileList(entries=entries, truncated=True, next_offset=position)
                entries.append(entry)
        return FileList(entries=entries, truncated=False, next_offset=None)

    def usage(self) -> Usage:
        """Allocated bytes and entry count of the workspace and its job logs (no links followed)."""
        return _add(_tree_usage(self.root), _tree_usage(self.logs))

    def export(self, paths: Sequence[str]) -> dict[str, bytes]:
        """The contents of the named files, and of every regular file under the named directories."""
        result: dict[str, bytes] = {}
        total = 0
        with open_root(str(self.root)) as root_fd:
            for path in paths:
                parts = split_path(path, allow_root=True)
                for name, data in self._export_one(root_fd, parts):
                    total += len(data)
                    if total > self._limits.snapshot_max_bytes:
                        raise QuotaError(
                            f"the export exceeds {self._limits.snapshot_max_bytes // MIB} MiB; "
                            "choose fewer or smaller files" + naming("snapshot_max_bytes")
                        )
                    result[name] = data
        return result

    def import_(self, files: Mapping[str, bytes]) -> builtins.list[str]:  # `list` here is the method above
        """Write every file of a {path: content} map (all paths are checked before anything is written)."""
        checked = {path: split_path(path) for path in files}
        self._check_room(sum(len(data) for data in files.values()))
        with open_root(str(self.root)) as root_fd:
            for path, parts in checked.items():
                self._write_at(root_fd, parts, files[path])
        return sorted("/".join(parts) for parts in checked.values())

    def _check_room(self, incoming: int) -> None:
        if incoming > self._limits.file_size_mib * MIB:
            raise QuotaError(f"a file may hold at most {self._limits.file_size_mib} MiB" + naming("file_size_mib"))
        used = self.usage()
        if used.bytes + incoming > self._limits.workspace_mib * MIB:
            raise QuotaError(
                f"this would exceed your disk quota of {self._limits.workspace_mib} MiB "
                f"({used.bytes // MIB} MiB used); {self._limits.quota_advice()}" + naming("workspace_mib")
            )
        if used.files >= self._limits.workspace_max_files:
            raise QuotaError(
                f"the workspace holds its limit of {self._limits.workspace_max_files} files; delete some first"
                + naming("workspace_max_files")
            )

    def _write_at(self, root_fd: int, parts: tuple[str, ...], content: bytes) -> None:
        shown = "/".join(parts)
        with open_dir(root_fd, parts[:-1], create=True) as dir_fd:
            temp = f".{parts[-1][:200]}.aar-tmp-{secrets.token_hex(4)}"
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                os.replace(temp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as error:
                os.unlink(temp, dir_fd=dir_fd)
                if error.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise PathError(f"{shown!r} is a directory") from None
                raise explain(error, shown) from None

    @staticmethod
    def _open_regular(dir_fd: int, name: str, shown: str) -> int:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as error:
            raise explain(error, shown) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PathError(f"{shown!r} is not a regular file")
        return fd

    def _export_one(self, root_fd: int, parts: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
        shown = "/".join(parts)
        with open_dir(root_fd, parts[:-1]) as dir_fd:
            try:
                st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False) if parts else os.fstat(dir_fd)
            except OSError as error:
                raise explain(error, shown) from None
            if stat.S_ISREG(st.st_mode):
                yield shown, _read_all(self._open_regular(dir_fd, parts[-1], shown))
                return
            if stat.S_ISLNK(st.st_mode):
                raise explain(OSError(errno.ELOOP, "symbolic link"), shown)
            if not stat.S_ISDIR(st.st_mode):
                raise PathError(f"{shown!r} is neither a regular file nor a directory")
        for entry in _walk(root_fd, parts, recursive=True):
            if entry.kind == "file":
                file_parts = split_path(entry.path)
                with open_dir(root_fd, file_parts[:-1]) as dir_fd:
                    yield entry.path, _read_all(self._open_regular(dir_fd, file_parts[-1], entry.path))


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _walk(root_fd: int, parts: tuple[str, ...], recursive: bool) -> Iterator[ListedFile]:
    """Entries under directory `parts`, sorted, depth first to MAX_DEPTH, never through links.

    Iterative and reopening each directory from the root, so a hostile tree (very deep or very
    wide) can neither overflow the stack nor exhaust descriptors.
    """
    pending = [parts]
    while pending:
        current = pending.pop()
        prefix = "/".join(current)
        with open_dir(root_fd, current) as dir_fd:
            subdirs = []
            for name in sorted(os.listdir(dir_fd)):
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                yield ListedFile(path=f"{prefix}/{name}" if prefix else name, kind=_kind(st.st_mode), size=st.st_size)
                if recursive and stat.S_ISDIR(st.st_mode) and len(current) < MAX_DEPTH:
                    subdirs.append((*current, name))
        pending.extend(reversed(subdirs))


def _tree_usage(root: Path | None) -> Usage:
    """Walked here when the tree is small and shallow, else by GNU du, which handles any depth and
    width without recursion or descriptor limits."""
    if root is None or not root.exists():
        return Usage(0, 0)
    return _quick_usage(root) or Usage(*_du(root, "--block-size=1", "--inodes"))


def _add(one: Usage, other: Usage) -> Usage:
    return Usage(one.bytes + other.bytes, one.files + other.files)


def _quick_usage(root: Path) -> Usage | None:
    """Usage of a tree of at most QUICK_MAX_ENTRIES entries and QUICK_MAX_DEPTH levels, or None beyond."""
    total = count = 0
    base = str(root).count("/")
    for directory, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        count += len(dirs) + len(files)
        if count > QUICK_MAX_ENTRIES or directory.count("/") - base >= QUICK_MAX_DEPTH:
            return None
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
    return Usage(total, count)


def _du(root: Path, *units: str) -> list[int]:
    """`du -sx UNIT root` for each unit, run concurrently (du walks any depth without recursion limits)."""
    env = {"LC_ALL": "C", "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.Popen(["du", "-sx", unit, str(root)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        for unit in units
    ]
    totals = []
    for run in runs:
        out, _ = run.communicate()
        totals.append(int(out.split()[0]) if out else 0)
    return totals
