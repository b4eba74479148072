"""The snapshot store: a bare git repository driven through stock `git` plumbing.

A snapshot is a commit on the branch of the agent who saved it (`refs/heads/AGENT`),
so `git clone` of the data directory shows every agent's work with ordinary tools.
A snapshot that builds on another one (any agent's) starts from that snapshot's files
and records it as a second parent, keeping each agent's branch a straight line that
never loses a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from servers.kit.errors import NotFoundError, ToolInputError
from servers.kit.settings import Settings
from servers.storage.models import Diff, FileContent, FileEntry, Snapshot, SnapshotInfo
from servers.storage.paths import validate_path

EMPTY_OID = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
BASED_ON_TRAILER = "Based-on: "
_LOG_FIELDS = 5
_LOG_FORMAT = "%x00".join(["%H", "%an", "%ct", "%P", "%B"])
"""With `log -z` every field and every commit ends at a NUL, a byte git refuses in a commit message."""
_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_PARENTS = re.compile(r"^([0-9a-f]{40}( [0-9a-f]{40})*)?$")
_MESSAGE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class GitError(RuntimeError):
    """git failed in a way that is not the caller's fault."""


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_snapshot_bytes: int
    max_files: int
    max_diff_chars: int
    max_read_chars: int


@dataclass(frozen=True)
class Page:
    """Characters [offset, offset + len(text)) of a text of `total` characters."""

    text: str
    offset: int
    total: int

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None when this page reaches the end."""
        end = self.offset + len(self.text)
        return end if end < self.total else None


def page_of(text: str, offset: int, limit: int) -> Page:
    return Page(text=text[offset : offset + limit], offset=min(offset, len(text)), total=len(text))


def check_message(message: str) -> str:
    """A snapshot message is plain text: control characters (but newline and tab) are refused."""
    found = _MESSAGE_CONTROL.search(message)
    if found:
        raise ToolInputError(
            f"the message holds the control character U+{ord(found.group()):04X} at position {found.start()}:"
            " write plain text (newlines and tabs are fine)"
        )
    return message


class SnapshotRepository:
    """Snapshots of every agent in one bare repository at `path`."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self._limits = limits
        self._branch_locks: dict[str, asyncio.Lock] = {}
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(path),
            "GIT_DIR": str(path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
            # No attributes of any kind: a snapshot's own .gitattributes must not change what is read,
            # diffed or checked out (git >= 2.42 reads HEAD's in a bare repository unless told otherwise).
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "attr.tree",
            "GIT_CONFIG_VALUE_0": EMPTY_TREE,
            "GIT_CONFIG_KEY_1": "core.attributesFile",
            "GIT_CONFIG_VALUE_1": os.devnull,
        }

    async def init(self) -> None:
        """Create the bare repository if it does not exist yet.

        Storage, sandbox and pgr servers each open the repository, and start at the same moment under
        `aar run`; two `git init`s of one folder fail ("File exists"), and a half-made repository must
        never be seen. So it is made in a scratch folder beside it and renamed into place: the first
        rename wins, and the others drop theirs.
        """
        if (self.path / "HEAD").exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.init-", dir=self.path.parent))
        try:
            env = {"GIT_DIR": str(scratch)}
            await self._git("init", "--quiet", "--bare", "--initial-branch=main", str(scratch), env=env)
            await self._git("config", "core.fsync", "committed", env=env)
            await self._git("config", "gc.auto", "0", env=env)
            with contextlib.suppress(OSError):  # another server renamed its own first
                if not (self.path / "HEAD").exists():
                    os.rename(scratch, self.path)  # atomic; onto a missing or empty folder only
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not (self.path / "HEAD").exists():
            raise GitError(f"could not create the snapshot repository {self.path}")

    async def _run(
        self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        """git's exit status, stdout and stderr."""
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self._env, **(env or {})},
        )
        stdout, stderr = await process.communicate(stdin)
        assert process.returncode is not None
        return process.returncode, stdout, stderr

    async def _git(self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        returncode, stdout, stderr = await self._run(*args, stdin=stdin, env=env)
        if returncode != 0:
            raise GitError(f"git {args[0]} failed: {stderr.decode(errors='replace').strip()}")
        return stdout

    async def resolve(self, snapshot: str) -> str:
        """The full id of a snapshot given by a unique prefix of 7 or more hex digits."""
        try:
            out = await self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{snapshot}^{{commit}}")
        except GitError:
            raise NotFoundError(
                f"no snapshot {snapshot!r} (or the prefix is ambiguous): take an id from list_snapshots or save"
            ) from None
        return out.decode().strip()

    async def is_ancestor(self, ancestor: str, snapshot: str) -> bool:
        """Whether `ancestor` is `snapshot` or one it was built from (its own history or a based_on, recursively)."""
        ancestor, snapshot = await self.resolve(ancestor), await self.resolve(snapshot)
        returncode, _, stderr = await self._run("merge-base", "--is-ancestor", ancestor, snapshot)
        if returncode not in (0, 1):
            raise GitError(f"git merge-base failed: {stderr.decode(errors='replace').strip()}")
        return returncode == 0

    async def head(self, agent: str) -> str | None:
        try:
            out = await self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{agent}")
        except GitError:
            return None
        return out.decode().strip()

    def _check_payload(self, files: Mapping[str, str], delete: list[str]) -> dict[str, bytes]:
        encoded: dict[str, bytes] = {}
        for path, content in files.items():
            validate_path(path)
            data = content.encode()
            if len(data) > self._limits.max_file_bytes:
                raise ToolInputError(
                    f"file {path!r} is {len(data)} bytes, over the limit of {self._limits.max_file_bytes}: "
                    "keep data and model weights out of snapshots"
                )
            encoded[path] = data
        total = sum(len(data) for data in encoded.values())
        if total > self._limits.max_snapshot_bytes:
            raise ToolInputError(
                f"the files add up to {total} bytes, over the snapshot limit of {self._limits.max_snapshot_bytes}"
            )
        for path in delete:
            validate_path(path)
            if path in encoded:
                raise ToolInputError(f"{path!r} is both written and deleted: do one or the other")
        paths = sorted(encoded)
        for shorter, longer in itertools.pairwise(paths):
            if longer.startswith(shorter + "/"):
                raise ToolInputError(f"{shorter!r} cannot be both a file and the folder of {longer!r}")
        return encoded

    async def save(
        self, *, agent: str, files: Mapping[str, str], message: str, based_on: str | None, delete: list[str]
    ) -> Snapshot:
        """Commit a snapshot to `agent`'s branch; nothing is written unless every check passes."""
        encoded = self._check_payload(files, delete)
        check_message(message)
        base = await self.resolve(based_on) if based_on is not None else None
        if not encoded and base is None:
            raise ToolInputError("nothing to save: give at least one file, or a snapshot to build on")
        lock = self._branch_locks.setdefault(agent, asyncio.Lock())
        async with lock:
            head = await self.head(agent)
            with tempfile.TemporaryDirectory(prefix="aar-save-") as scratch:
                tree = await self._build_tree(Path(scratch), encoded, base, delete)
            parents = list(dict.fromkeys(p for p in (head, base) if p is not None))
            body = message.strip() + (f"\n\n{BASED_ON_TRAILER}{base}\n" if base else "\n")
            identity = {"GIT_AUTHOR_NAME": agent, "GIT_AUTHOR_EMAIL": f"{agent}@aar-lab.local"}
            identity |= {"GIT_COMMITTER_NAME": agent, "GIT_COMMITTER_EMAIL": f"{agent}@aar-lab.local"}
            parent_args = [arg for parent in parents for arg in ("-p", parent)]
            commit = await self._git("commit-tree", tree, *parent_args, "-F", "-", stdin=body.encode(), env=identity)
            commit_id = commit.decode().strip()
            await self._git("update-ref", f"refs/heads/{agent}", commit_id, head or EMPTY_OID)
        return await self.snapshot(commit_id)

    async def _build_tree(self, scratch: Path, files: dict[str, bytes], base: str | None, delete: list[str]) -> str:
        env = {"GIT_INDEX_FILE": str(scratch / "index")}
        if base is not None:
            await self._git("read-tree", base, env=env)
        else:
            await self._git("read-tree", "--empty", env=env)
        if delete:
            listed = await self._git("ls-files", "-z", "--", *delete, env=env)
            present = set(listed.decode().split("\0")) - {""}
            missing = [path for path in delete if path not in present]
            if missing:
                raise ToolInputError(f"cannot delete {missing}: not in the snapshot being built on")
        entries: list[str] = []
        if files:
            blob_dir = scratch / "blobs"
            blob_dir.mkdir()
            names = []
            for number, data in enumerate(files.values()):
                name = blob_dir / str(number)
                name.write_bytes(data)
                names.append(str(name))
            blob_ids = await self._git("hash-object", "-w", "--stdin-paths", stdin="\n".join(names).encode())
            entries += [
                f"100644 {blob_id}\t{path}" for path, blob_id in zip(files, blob_ids.decode().split(), strict=True)
            ]
        entries += [f"0 {EMPTY_OID}\t{path}" for path in delete]
        if entries:
            await self._git("update-index", "--index-info", stdin=("\n".join(entries) + "\n").encode(), env=env)
        count = len((await self._git("ls-files", "-z", env=env)).split(b"\0")) - 1
        if count > self._limits.max_files:
            raise ToolInputError(f"the snapshot would hold {count} files, over the limit of {self._limits.max_files}")
        try:
            return (await self._git("write-tree", env=env)).decode().strip()
        except GitError as error:
            raise ToolInputError(
                f"these paths clash with the snapshot built on (a file and a folder of one name): {error}"
            ) from None

    def _parse_log(self, raw: bytes) -> list[SnapshotInfo]:
        """Rows of `git log -z --format=_LOG_FORMAT`: five NUL-ended fields per commit."""
        fields = raw.decode(errors="replace").split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        if len(fields) % _LOG_FIELDS:
            raise GitError(f"git log gave {len(fields)} fields, not a multiple of {_LOG_FIELDS}")
        infos = []
        for start in range(0, len(fields), _LOG_FIELDS):
            commit, author, timestamp, parents, body = fields[start : start + _LOG_FIELDS]
            commit = commit.lstrip("\n")  # -z ends a commit's body with a NUL, the next starts after a newline
            if not (_COMMIT_ID.match(commit) and timestamp.isdigit() and _PARENTS.match(parents)):
                raise GitError(f"unexpected git log record for {commit[:40]!r}")
            message, based_on = body.strip(), None
            lines = message.splitlines()
            if lines and lines[-1].startswith(BASED_ON_TRAILER):
                based_on = lines[-1][len(BASED_ON_TRAILER) :]
                message = "\n".join(lines[:-1]).strip()
            infos.append(
                SnapshotInfo(
                    id=commit,
                    author=author,
                    message=message,
                    created_at=int(timestamp),
                    parents=parents.split(),
                    based_on=based_on,
                )
            )
        return infos

    async def snapshot(self, snapshot: str) -> Snapshot:
        commit = await self.resolve(snapshot)
        info = self._parse_log(await self._git("log", "-z", "-1", f"--format={_LOG_FORMAT}", commit))[0]
        listing = await self._git("ls-tree", "-r", "-l", "-z", commit)
        files = []
        for entry in listing.decode().split("\0"):
            if entry:
                meta, path = entry.split("\t", 1)
                files.append(FileEntry(path=path, size=int(meta.split()[3])))
        return Snapshot(**info.model_dump(), files=files, total_bytes=sum(f.size for f in files))

    async def list_snapshots(self, *, author: str | None, limit: int, offset: int = 0) -> list[SnapshotInfo]:
        """Snapshots newest first, of one author or of everyone, skipping the newest `offset`."""
        if author is not None:
            if await self.head(author) is None:
                return []
            revisions = [f"refs/heads/{author}", f"--author=^{author} <"]
        else:
            revisions = ["--branches"]
        return await self._log(revisions, limit=limit, offset=offset)

    async def log(self, snapshot: str, *, limit: int, offset: int = 0) -> list[SnapshotInfo]:
        """The ancestry of a snapshot, itself first, skipping the first `offset`."""
        return await self._log([await self.resolve(snapshot)], limit=limit, offset=offset)

    async def _log(self, revisions: list[str], *, limit: int, offset: int) -> list[SnapshotInfo]:
        raw = await self._git(
            "log", "-z", "--date-order", f"--skip={offset}", f"-n{limit}", f"--format={_LOG_FORMAT}", *revisions, "--"
        )
        return self._parse_log(raw)

    async def read_file(self, snapshot: str, path: str, *, offset: int = 0, limit: int | None = None) -> FileContent:
        """Characters [offset, offset + limit) of one file; `limit` is capped at max_read_chars."""
        validate_path(path)
        commit = await self.resolve(snapshot)
        try:
            data = await self._git("cat-file", "blob", f"{commit}:{path}")
        except GitError:
            raise NotFoundError(f"snapshot {commit[:12]} has no file {path!r}: get_snapshot lists its files") from None
        try:
            content = data.decode()
        except UnicodeDecodeError:
            raise ToolInputError(f"{path!r} is not UTF-8 text") from None
        page = page_of(content, offset, min(limit or self._limits.max_read_chars, self._limits.max_read_chars))
        return FileContent(
            snapshot=commit,
            path=path,
            size=len(data),
            content=page.text,
            offset=page.offset,
            total_chars=page.total,
            next_offset=page.next_offset,
            more=_more("read_file", page, self._limits.max_read_chars),
        )

    async def read_all(self, snapshot: str) -> dict[str, bytes]:
        """Every file of a snapshot, the exact stored blobs (for checking a snapshot out and scoring it).

        Blobs come from `ls-tree` and `cat-file --batch`, which apply no attributes: unlike
        `git archive`, a snapshot's .gitattributes (export-subst, export-ignore) changes nothing.
        """
        commit = await self.resolve(snapshot)
        blobs: list[tuple[str, str]] = []
        for entry in (await self._git("ls-tree", "-r", "-z", "--full-tree", commit)).decode().split("\0"):
            if entry:
                meta, path = entry.split("\t", 1)
                _mode, kind, oid = meta.split()
                if kind == "blob":
                    blobs.append((path, oid))
        if not blobs:
            return {}
        raw = await self._git("cat-file", "--batch", stdin="".join(f"{oid}\n" for _, oid in blobs).encode())
        files, position = {}, 0
        for path, oid in blobs:
            header_end = raw.index(b"\n", position)
            found_oid, kind, size = raw[position:header_end].decode().split()
            if found_oid != oid or kind != "blob":
                raise GitError(f"cat-file answered {found_oid} {kind} for {oid}")
            start = header_end + 1
            files[path] = raw[start : start + int(size)]
            position = start + int(size) + 1
        return files

    async def diff(
        self, older: str, newer: str, path: str | None, *, offset: int = 0, limit: int | None = None
    ) -> Diff:
        """Characters [offset, offset + limit) of the unified diff; `limit` is capped at max_diff_chars."""
        old_commit, new_commit = await self.resolve(older), await self.resolve(newer)
        scope = ["--", validate_path(path)] if path is not None else ["--"]
        names = await self._git("diff", "--name-only", "-z", old_commit, new_commit, *scope)
        plain = ["--no-color", "--no-ext-diff", "--no-textconv", "--text"]
        text = (await self._git("diff", *plain, old_commit, new_commit, *scope)).decode(errors="replace")
        page = page_of(text, offset, min(limit or self._limits.max_diff_chars, self._limits.max_diff_chars))
        return Diff(
            from_snapshot=old_commit,
            to_snapshot=new_commit,
            files_changed=[name for name in names.decode().split("\0") if name],
            diff=page.text,
            offset=page.offset,
            total_chars=page.total,
            next_offset=page.next_offset,
            truncated=page.next_offset is not None,
            more=_more("diff", page, self._limits.max_diff_chars),
        )


async def open_repository(settings: Settings) -> SnapshotRepository:
    """The snapshot repository of `settings.data_dir` (also read by the forum, sandbox and pgr servers)."""
    limits = Limits(
        max_file_bytes=settings.storage_max_file_bytes,
        max_snapshot_bytes=settings.storage_max_snapshot_bytes,
        max_files=settings.storage_max_files,
        max_diff_chars=settings.storage_max_diff_chars,
        max_read_chars=settings.storage_max_read_chars,
    )
    repository = SnapshotRepository(settings.data_dir / "storage.git", limits)
    await repository.init()
    return repository


def _more(tool: str, page: Page, cap: int) -> str | None:
    """How to get the rest of a text cut into pages, or None when nothing follows."""
    if page.next_offset is None:
        return None
    return (
        f"showing characters {page.offset}-{page.next_offset} of {page.total} (at most {cap} per call):"
        f" call {tool} again with offset={page.next_offset} for the next part"
    )
