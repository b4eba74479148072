"""Context management: when a conversation nears its limit, the agent summarises it and goes on.

The agent itself writes the summary (one model call, no tools), so it keeps what it judges
important. The new conversation is the kickoff message plus that summary, followed by the last
few turns verbatim, so the freshest tool results survive and every tool call still has its result.
"""

from __future__ import annotations

import copy
from typing import Any

SUMMARY_REQUEST = """\
(automatic message) Your context is nearly full. It will be replaced by a summary that you write
now, followed by your last few turns. Write notes for yourself to carry on from: your direction,
what you tried and what it scored (with snapshot and submission ids), what you learned, what
others posted that matters, what you were doing and what you planned next. Do not call tools."""

SUMMARY_HEADER = "\n\n## Your own notes from before your context was compacted\n\n"


def summary_request(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with the request to summarise added to its last (user) message."""
    request = copy.deepcopy(messages)
    last = request[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"].append({"type": "text", "text": SUMMARY_REQUEST})
    return request


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
