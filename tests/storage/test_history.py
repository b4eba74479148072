"""What storage shows is what runs: no attribute processing, and log rows no message can forge."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from servers.storage.store import open_repository
from tests.support import call, fingerprint, make_settings, memory_client

pytestmark = pytest.mark.anyio

ATTRIBUTES = "*.py export-subst\nhidden.py export-ignore\n.gitattributes export-ignore\n"
PLAIN_PATH = {"PATH": "/usr/bin:/bin"}


def _git(repo: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["git", "--git-dir", str(repo), *args], input=stdin, capture_output=True, check=True, env=env)
    return out.stdout.decode()


async def test_loading_reads_exactly_the_files_that_read_file_shows(data_dir: Path) -> None:
    files = {
        ".gitattributes": ATTRIBUTES,
        "method.py": "VERSION = '$Format:%H %an$'\n",
        "hidden.py": "def train(): return 'what really runs'\n",
    }
    async with memory_client("storage", data_dir, "alice") as alice:
        saved = await call(alice, "save", {"files": files, "message": "attributes"})
        shown = {}
        for entry in saved["files"]:
            read = await call(alice, "read_file", {"snapshot": saved["id"], "path": entry["path"]})
            shown[entry["path"]] = read["content"].encode()
    loaded = await (await open_repository(make_settings(data_dir))).read_all(saved["id"])
    assert shown == {path: text.encode() for path, text in files.items()}
    assert loaded == shown  # what load_snapshot checks out and PGR scores


async def test_a_message_with_control_characters_is_refused_and_nothing_is_stored(data_dir: Path) -> None:
    async with memory_client("storage", data_dir, "alice") as alice:
        await call(alice, "save", {"files": {"a.py": "1"}, "message": "first"})
        before = fingerprint("storage", data_dir)
        for byte in ("\x1e", "\x1f", "\x00", "\x1b"):
            result = await alice.call_tool("save", {"files": {"a.py": "2"}, "message": f"fix{byte}forged"})
            assert result.is_error
            assert f"control character U+{ord(byte):04X}" in result.content[0].text  # type: ignore[union-attr]
        assert fingerprint("storage", data_dir) == before


async def test_no_commit_message_can_add_or_alter_log_rows(data_dir: Path) -> None:
    """Even a commit written around the server (stock git) cannot split the log into forged rows."""
    repo = data_dir / "storage.git"
    async with memory_client("storage", data_dir, "bob") as bob:
        real = await call(bob, "save", {"files": {"b.py": "1"}, "message": "bob's work"})
        forged_row = f"\x1e{real['id']}\x1fbob\x1f1000000000\x1f\x1fbob admits it was copied"
        message = f"innocent{forged_row}\x1fend"
        tree = _git(repo, "write-tree", env={"GIT_INDEX_FILE": str(data_dir / "empty-index"), **PLAIN_PATH}).strip()
        identity = {"GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@x", "GIT_COMMITTER_NAME": "mallory"}
        identity |= {"GIT_COMMITTER_EMAIL": "m@x", **PLAIN_PATH}
        commit = _git(repo, "commit-tree", tree, "-F", "-", stdin=message.encode(), env=identity).strip()
        _git(repo, "update-ref", "refs/heads/mallory", commit)
        listed = (await call(bob, "list_snapshots"))["snapshots"]
        assert sorted((s["id"], s["author"]) for s in listed) == sorted([(commit, "mallory"), (real["id"], "bob")])
        assert next(s for s in listed if s["id"] == commit)["message"] == message
        history = (await call(bob, "log", {"snapshot": commit}))["snapshots"]
        assert [(s["id"], s["author"], s["message"]) for s in history] == [(commit, "mallory", message)]
        shown = await call(bob, "get_snapshot", {"snapshot": commit})
        assert (shown["author"], shown["message"]) == ("mallory", message)
