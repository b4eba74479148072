"""Following a record: only new bytes are read, a torn line waits for its end, any page is one seek away."""

from __future__ import annotations

import json
from pathlib import Path

from client.console.records import PAGE_EVENTS, FollowedRecord
from client.record import AgentLog


def _write(log: AgentLog, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        log.write("message", role="user", content=[{"type": "text", "text": f"message {number}"}])


def test_pages_hold_the_right_events_of_a_long_record(tmp_path: Path) -> None:
    total = 10 * PAGE_EVENTS + 7
    log = AgentLog(tmp_path / "a.jsonl")
    _write(log, total)
    log.close()
    record = FollowedRecord(tmp_path / "a.jsonl")
    record.refresh()
    assert record.events == 10 * PAGE_EVENTS + 7 and record.pages() == 11
    third = record.page(3)
    assert [e["number"] for e in third] == list(range(2 * PAGE_EVENTS + 1, 3 * PAGE_EVENTS + 1))
    assert third[0]["content"][0]["text"] == f"message {2 * PAGE_EVENTS}"
    assert len(record.page(11)) == 7 and record.page(12) == []
    # a transcript opens on its newest PAGE_EVENTS events, not on the seven of page 11 alone
    assert [e["number"] for e in record.latest()] == list(range(total - PAGE_EVENTS + 1, total + 1))
    assert record.progress.messages[-1]["content"][-1]["text"] == f"message {10 * PAGE_EVENTS + 6}"  # one user turn


def test_a_refresh_reads_only_what_was_appended_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AgentLog(path)
    _write(log, 3)
    record = FollowedRecord(path)
    record.refresh()
    assert record.events == 3
    line = json.dumps({"t": 1.0, "type": "stop", "reason": "done"})
    with path.open("a") as raw:
        raw.write(line[:10])  # the client is in the middle of writing this line
    record.refresh()
    assert record.events == 3 and record.progress.stop_reason is None
    with path.open("a") as raw:
        raw.write(line[10:] + "\n")
    record.refresh()
    assert record.events == 4 and record.progress.stop_reason == "done"
    assert record.activity.doing == "stopped: done"
    log.close()


def test_refusals_and_sandbox_limit_hits_are_kept_with_the_call_that_caused_them(tmp_path: Path) -> None:
    log = AgentLog(tmp_path / "a.jsonl")
    log.write("tool_call", id="1", name="pgr__submit", input={"snapshot": "abc"})
    log.write("tool_result", id="1", name="pgr__submit", is_error=True, refused="budget spent", content="refused")
    log.write("tool_call", id="2", name="sandbox__exec", input={"command": "python -c 'x = bytearray(10**10)'"})
    log.write("tool_result", id="2", name="sandbox__exec", is_error=False, refused=None,
              content=json.dumps({"exit_code": None, "limit_hit": "memory"}))  # fmt: skip
    log.write("tool_call", id="3", name="pgr__submit", input={"snapshot": "def"})
    log.write("tool_result", id="3", name="pgr__submit", is_error=True, refused=None,
              content="submission budget spent: 6 per hour; try later")  # fmt: skip
    log.close()
    record = FollowedRecord(tmp_path / "a.jsonl")
    record.refresh()
    assert [(r["input"], r["result"]) for r in record.submit_refusals] == [
        ({"snapshot": "def"}, "submission budget spent: 6 per hour; try later")
    ]
    assert [(r["tool"], r["reason"], r["input"]) for r in record.refused] == [
        ("pgr__submit", "budget spent", {"snapshot": "abc"})
    ]
    assert [(h["limit"], h["input"]["command"]) for h in record.limit_hits] == [
        ("memory", "python -c 'x = bytearray(10**10)'")
    ]
