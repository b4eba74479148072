"""Context management: when a conversation nears its limit, the agent summarises it and goes on.

The agent itself writes the summary (one model call with the same system prompt and tools, so it
reads the conversation from the prompt cache; the request asks it not to call tools), so it keeps
what it judges important. The new conversation is the kickoff message plus that summary, followed by the last
few turns verbatim, so the freshest tool results survive and every tool call still has its result.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

SUMMARY_REQUEST = """\
(automatic message) Your context is nearly full. It will be replaced by a summary that you write
now, followed by your last few turns. Write notes for yourself to carry on from: your direction,
what you tried and what it scored (with snapshot and submission ids), what you learned, what
others posted that matters, what you were doing and what you planned next. Do not call tools."""

SUMMARY_HEADER = "\n\n## Your own notes from before your context was compacted\n\n"


def summary_requests(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Requests for the summary, each shorter than the one before, down to the first message alone.

    The first is the whole conversation with the request added at its end, so it reads the
    conversation from the cache. If that is too long for the model, the oldest turns go first
    (a turn is the model's message and the results that answer it, so every tool call keeps its
    result), halving what is kept each time; the last, the kickoff and earlier notes, always fits.
    """
    turn_starts = [index for index, message in enumerate(messages) if index > 0 and message["role"] == "assistant"]
    keep = len(turn_starts)
    while True:
        tail = messages[turn_starts[-keep] :] if keep else []
        yield _with_request([messages[0], *tail])
        if keep == 0:
            return
        keep //= 2


def _with_request(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with the request to summarise as the last user message (added to it, or after the model's)."""
    request = copy.deepcopy(messages)
    ask = {"type": "text", "text": SUMMARY_REQUEST}
    last = request[-1]
    if last["role"] != "user":
        request.append({"role": "user", "content": [ask]})
    elif isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}, ask]
    else:
        last["content"].append(ask)
    return request


def earlier_notes(head: dict[str, Any]) -> str:
    """The notes a compacted conversation's first message carries ('' before the first compaction)."""
    content = head["content"]
    text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content if b["type"] == "text")
    _, found, notes = text.partition(SUMMARY_HEADER)
    return notes.strip() if found else ""


def kept_turns(messages: list[dict[str, Any]], keep_recent_turns: int) -> int:
    """How many trailing messages to keep: the last turns (assistant, user) pairs, at least one turn dropped."""
    assistants = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
    keep = min(keep_recent_turns, len(assistants) - 1)
    if keep <= 0:
        return 0
    return len(messages) - assistants[-keep]


def compacted_head(kickoff: str, summary: str) -> dict[str, Any]:
    """The first message of the compacted conversation, which goes on as [head, *messages[-kept:]]."""
    return {"role": "user", "content": [{"type": "text", "text": kickoff + SUMMARY_HEADER + summary.strip()}]}
