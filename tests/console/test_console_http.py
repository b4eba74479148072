"""The console over real HTTP: who may use it, and every action it takes (good input, bad input, nothing lost)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from client.console.app import create_console
from client.console.records import PAGE_EVENTS
from client.console.run import RunView
from client.console.serve import ConsoleOptions, console_running
from client.record import AgentLog
from servers.forum.store import ForumStore
from servers.pgr.store import PgrStore
from tests.console.support import form_secret, live_view, make_run, request, serving
from tests.support import memory_client

pytestmark = pytest.mark.anyio


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()


async def test_every_page_renders_a_finished_run(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    view = RunView(run_dir)
    submission = view.servers.pgr.leaderboard()[0]["id"]
    async with serving(view) as base:
        for path, expected in (
            ("/", "alpha&#39;s direction"),
            ("/pgr", f'data-submission="{submission}"'),
            ("/leaderboard", f"/submissions/{submission}"),
            (f"/submissions/{submission}", "decoy teacher"),
            ("/forum", "Confidence loss helps"),
            ("/forum?q=auxiliary", "Confidence loss helps"),
            ("/forum?author=beta", "0 posts"),
            ("/forum/threads/1", "The auxiliary confidence term"),
            ("/transcripts", "alpha"),
            ("/transcripts/alpha", "kickoff for alpha"),
            ("/transcripts/alpha", "the latest "),
            ("/transcripts/alpha?page=1", "page 1 of 1"),
            ("/integrity", "budget spent"),
            ("/integrity", "Rate-limit hits (1)"),
        ):
            status, body, _ = await _get(base + path)
            assert status == 200, (path, body[:500])
            assert expected in body, path


async def test_unknown_things_are_clear_404s(tmp_path: Path) -> None:
    view = RunView(await make_run(tmp_path))
    async with serving(view) as base:
        for path, message in (
            ("/submissions/sub_nope", "no submission"),
            ("/transcripts/nobody", "no agent"),
            ("/forum/threads/999", "no post 999"),
            ("/transcripts/alpha?page=x", "page must be a number"),
            ("/snapshots/HEAD", "hexadecimal"),
            ("/snapshots/0123456789abcdef", "no snapshot repository"),
        ):
            status, body, _ = await _get(base + path)
            assert status in (400, 404) and message in body, path
        status, body, _ = await _get(base + "/forum?q=%2A%2A")
        assert status == 400 and "no words to search for" in body


async def test_loopback_refuses_a_foreign_host_header(tmp_path: Path) -> None:
    view = RunView(await make_run(tmp_path))
    async with serving(view) as base:
        status, body, _ = await _get(base + "/", {"Host": "attacker.example:8710"})
        assert status == 403 and "loopback" in body


async def test_off_loopback_every_request_needs_an_operator_token(tmp_path: Path) -> None:
    view = RunView(await make_run(tmp_path))
    lines: list[str] = []
    options = ConsoleOptions(host="0.0.0.0", port=0, operators=["ada", "grace"])  # noqa: S104 the case under test
    async with console_running(lambda access: create_console(view, access), options, lines.append) as port:
        base = f"http://127.0.0.1:{port}"
        assert len(lines) == 2 and all("?token=" in line for line in lines)
        status, body, _ = await _get(base + "/")
        assert status == 403 and "token" in body
        status, _, _ = await _get(base + "/?token=wrong")
        assert status == 403
        grace = next(line for line in lines if "(grace)" in line).split("token=")[1].split()[0]
        status, _, headers = await _get(f"{base}/?token={grace}")
        assert status == 303 and "aar_console=" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        status, body, _ = await _get(base + "/", {"Cookie": cookie})
        assert status == 200 and "signed in as grace" in body
        status, body, _ = await _get(base + "/api/team", {"Authorization": f"Bearer {grace}"})
        assert status == 200 and '"rows"' in body


async def test_a_form_without_the_console_secret_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    view = live_view(run_dir)
    forum = run_dir.servers_dir / "forum.sqlite"
    before = _rows(forum, "SELECT * FROM posts")
    async with serving(view) as base:
        for path, form in (
            ("/forum/posts", {"kind": "note", "title": "t", "body": "b"}),
            ("/agents/alpha/pause", {}),
            ("/submissions/x/quarantine", {"reason": "r"}),
        ):
            status, body, _ = await _post(base + path, {**form, "form_secret": "forged"})
            assert status == 403 and "did not come from this console" in body
    assert _rows(forum, "SELECT * FROM posts") == before
    assert view.actions.entries() == [] and view.live is not None
    assert view.live.controls.agents["alpha"].paused_by is None


async def test_a_human_post_reaches_the_agents_feed_and_the_steering_log(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    view = RunView(run_dir)
    async with serving(view) as base:
        secret = form_secret((await _get(base + "/forum"))[1])
        status, _, headers = await _post(
            base + "/forum/posts",
            {"form_secret": secret, "kind": "idea", "title": "Try label smoothing", "body": "On the negation task.",
             "tags": "smoothing, negation"},
        )  # fmt: skip
        assert status == 303 and headers["location"].startswith("/forum/threads/")
        status, body, _ = await _get(base + headers["location"])
        assert "Try label smoothing" in body and "human:ada" in body
    forum = await ForumStore.open(run_dir.servers_dir / "forum.sqlite")
    feed = await forum.feed(since=0, limit=50, tag=None, kind=None, author=None)
    await forum.close()
    mine = [post for post in feed.posts if post.author == "human:ada"]
    assert len(mine) == 1 and mine[0].tags == ["negation", "smoothing"] and mine[0].kind == "idea"
    [entry] = view.actions.entries()
    assert entry["by"] == "ada" and entry["action"] == "post" and entry["detail"] == "Try label smoothing"


async def test_a_bad_human_post_says_what_is_wrong_keeps_the_text_and_stores_nothing(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    view = RunView(run_dir)
    forum = run_dir.servers_dir / "forum.sqlite"
    before = _rows(forum, "SELECT * FROM posts")
    async with serving(view) as base:
        secret = form_secret((await _get(base + "/forum"))[1])
        for form, problem in (
            ({"kind": "note", "title": "", "body": "kept body text"}, "title"),
            ({"kind": "rant", "title": "A title", "body": "kept body text"}, "kind"),
            ({"kind": "note", "title": "A title", "body": "kept body text", "tags": "Not A Tag"}, "tags"),
        ):
            status, body, _ = await _post(base + "/forum/posts", {"form_secret": secret, **form})
            assert status == 400 and "not posted" in body and problem in body
            assert "kept body text" in body
    assert _rows(forum, "SELECT * FROM posts") == before and view.actions.entries() == []


async def test_quarantine_takes_a_scored_submission_off_the_leaderboard_and_records_who(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    view = RunView(run_dir)
    [official] = view.servers.pgr.leaderboard()
    queued = next(s for s in view.servers.pgr.submissions() if s["state"] == "queued")
    async with serving(view) as base:
        secret = form_secret((await _get(f"{base}/submissions/{official['id']}"))[1])
        status, body, _ = await _post(f"{base}/submissions/{official['id']}/quarantine", {"form_secret": secret})
        assert status == 400 and "say why" in body
        status, body, _ = await _post(
            f"{base}/submissions/{queued['id']}/quarantine", {"form_secret": secret, "reason": "looks odd"}
        )
        assert status == 400 and "only scored submissions" in body
        assert view.actions.entries() == []
        status, _, _ = await _post(
            f"{base}/submissions/{official['id']}/quarantine", {"form_secret": secret, "reason": "read the test labels"}
        )
        assert status == 303
        body = (await _get(base + "/integrity"))[1]
        assert official["id"] in body.split('id="quarantined"')[1].split("</section>")[0]
        assert official["id"] not in (await _get(base + "/leaderboard"))[1]
    store = await PgrStore.open(run_dir.servers_dir / "pgr.sqlite")
    assert await store.leaderboard(10) == []  # the PGR server's own leaderboard drops it too
    quarantined = await store.submission(official["id"])
    await store.close()
    assert quarantined is not None and quarantined.state == "quarantined"
    assert quarantined.quarantined_by == "human:ada"  # the operator's identity, as the PGR server recorded it
    [entry] = view.actions.entries()
    assert (entry["by"], entry["action"], entry["target"], entry["detail"]) == (
        "ada", "quarantine", official["id"], "read the test labels",
    )  # fmt: skip


async def test_agents_are_steered_only_where_the_team_runs(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    async with serving(RunView(run_dir)) as base:
        secret = form_secret((await _get(base + "/forum"))[1])
        status, body, _ = await _post(base + "/agents/alpha/pause", {"form_secret": secret})
        assert status == 409 and "not live here" in body
    view = live_view(run_dir)
    async with serving(view) as base:
        secret = form_secret((await _get(base + "/"))[1])
        status, body, _ = await _post(base + "/agents/nobody/pause", {"form_secret": secret})
        assert status == 404 and "no agent &#39;nobody&#39;" in body
        status, body, _ = await _post(base + "/agents/alpha/explode", {"form_secret": secret})
        assert status == 404 and "unknown action" in body
        status, _, _ = await _post(base + "/agents/alpha/pause", {"form_secret": secret})
        assert status == 303
        assert 'action="/agents/alpha/resume"' in (await _get(base + "/"))[1]
    assert view.live is not None and view.live.controls.agents["alpha"].paused_by == "ada"
    assert [(e["by"], e["action"], e["target"]) for e in view.actions.entries()] == [("ada", "pause", "alpha")]


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    return await anyio.to_thread.run_sync(lambda: request(url, headers=headers))


async def _post(url: str, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    return await anyio.to_thread.run_sync(lambda: request(url, form=form))


async def test_the_forum_lists_threads_by_activity_and_pages_through_them(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    forum = await ForumStore.open(run_dir.servers_dir / "forum.sqlite")
    for number in range(60):
        await forum.create_post(author="beta", kind="note", title=f"note {number}", body="body", tags=[])
    await forum.create_post(author="beta", kind="reply", title="re", body="agreed", tags=[], parent_id=1)
    await forum.close()
    async with serving(RunView(run_dir)) as base:
        first = (await _get(base + "/forum"))[1]
        assert first.count("<tr data-post=") == 50
        assert first.index("Confidence loss helps") < first.index("note 59")  # its new reply makes it the latest
        older = first.split('rel="next">')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
        second = (await _get(base + "/forum" + older))[1]
        assert second.count("<tr data-post=") == 11 and 'rel="next"' not in second and 'rel="prev"' in second
        filtered = (await _get(base + "/forum?author=beta&offset=50"))[1]
        assert filtered.count('<article class="post') == 11  # 61 posts by beta, 50 a page


async def test_what_agents_write_is_shown_as_text_never_run_as_markup(tmp_path: Path) -> None:
    """Agents are untrusted: a script in a post or a tool call must not run in the operator's browser."""
    run_dir = await make_run(tmp_path)
    attack = "<script>fetch('/agents/alpha/stop', {method: 'POST'})</script><img src=x onerror=alert(1)>"
    forum = await ForumStore.open(run_dir.servers_dir / "forum.sqlite")
    await forum.create_post(author="beta", kind="note", title=attack, body=attack, tags=[])
    await forum.close()
    log = AgentLog(run_dir.agent_log_path("beta"))
    log.write("message", role="assistant", content=[{"type": "text", "text": attack}])
    log.close()
    async with serving(RunView(run_dir)) as base:
        for path in ("/", "/forum", "/forum?q=fetch", "/forum/threads/2", "/transcripts/beta"):
            body = (await _get(base + path))[1]
            assert "&lt;script&gt;" in body or "&lt;img" in body, path
            assert "<script>fetch" not in body and "<img src=x" not in body, path


async def test_the_integrity_page_counts_the_limits_servers_refused_calls_at(tmp_path: Path) -> None:
    """Refusals as the forum and the sandbox word them, recorded as the client records tool results."""
    run_dir = await make_run(tmp_path)
    servers = run_dir.servers_dir
    refusals: list[tuple[str, str, dict[str, object], str]] = []
    async with memory_client("forum", servers, "beta", forum_posts_per_minute=1) as forum:
        for number in range(4):
            arguments: dict[str, object] = {"title": f"flood {number}", "body": "x", "kind": "note"}
            result = await forum.call_tool("post", arguments)
            if result.is_error:
                refusals.append(("beta", "forum__post", arguments, result.content[0].text))  # type: ignore[union-attr]
    async with memory_client("sandbox", servers, "alpha", sandbox_limits={"write_max_bytes": 10}) as sandbox:
        arguments = {"path": "big.txt", "content": "x" * 100}
        result = await sandbox.call_tool("write_file", arguments)
        refusals.append(("alpha", "sandbox__write_file", arguments, result.content[0].text))  # type: ignore[union-attr]
    for number, (agent, tool, arguments, text) in enumerate(refusals):
        log = AgentLog(run_dir.agent_log_path(agent))
        log.write("tool_call", id=f"r{number}", name=tool, input=arguments)
        log.write("tool_result", id=f"r{number}", name=tool, is_error=True, refused=None, duration_s=0.0, content=text)
        log.close()
    async with serving(RunView(run_dir)) as base:
        body = (await _get(base + "/integrity"))[1]
    section = body.split('id="server-limits"')[1].split("</section>")[0]
    assert "Server limit refusals (4)" in section
    rows = {row.split("<code>")[2].split("</code>")[0]: row for row in section.split("<tr>")[2:]}
    assert set(rows) == {"AAR_FORUM_POSTS_PER_MINUTE", "AAR_SANDBOX_LIMITS write_max_bytes"}
    flood, quota = rows["AAR_FORUM_POSTS_PER_MINUTE"], rows["AAR_SANDBOX_LIMITS write_max_bytes"]
    assert "<td>beta</td>" in flood and "forum__post" in flood and '<td class="n">3</td>' in flood
    assert "<td>alpha</td>" in quota and '<td class="n">1</td>' in quota


async def test_a_long_transcript_opens_on_its_newest_events_and_every_page_links_back_to_them(tmp_path: Path) -> None:
    run_dir = await make_run(tmp_path)
    log = AgentLog(run_dir.agent_log_path("alpha"))  # appends
    for number in range(2 * PAGE_EVENTS):
        log.write("message", role="user", content=[{"type": "text", "text": f"note {number}"}])
    log.close()
    async with serving(RunView(run_dir)) as base:
        _, latest, _ = await _get(base + "/transcripts/alpha")
        _, first, _ = await _get(base + "/transcripts/alpha?page=1")
    assert f"the latest {PAGE_EVENTS} events" in latest and f"note {2 * PAGE_EVENTS - 1}" in latest
    assert f"note {PAGE_EVENTS - 1}" not in latest  # a full window of the newest, not the short last page
    assert "page 1 of" in first and '<a href="?">latest »</a>' in first
