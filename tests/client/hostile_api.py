"""A hostile Messages API for tests: a real HTTP server on 127.0.0.1 that behaves as the real one
does on bad days, independent of the scripted researcher.

It checks every request as the real API would (roles alternate, no empty message or
whitespace-only text, every tool call answered by its result right after and no result without
its call, thinking blocks come back with their signatures untouched, at most four cache
breakpoints, the prompt within the context window) and records each violation in `invalid`, so a
test can assert the client never sent one. Faults come from a per-agent schedule (request numbers
from 1) or at random with a fixed seed. Usage is counted as characters / 4, with a prompt cache
that reads the longest prefix written by an earlier breakpoint (looking back 20 blocks, as the
API does) and is keyed on tools, system and tool_choice; `billed` holds the usage of every
answer that carried one, by request id, for the test to check the client's cost accounting.

The "model" is a tiny policy: it reads its feed, writes and reads a notes file (now and then two
tools at once), and writes a summary when asked for one.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import http.server
import json
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from client.compaction import SUMMARY_REQUEST

API_KEY = "sk-hostile-test"
MODELS = {"claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"}
SIGNING_KEY = b"hostile-fake-thinking"
CACHE_LOOKBACK_BLOCKS = 20

FAULTS = (
    "rate_limit",  # 429 with retry-after
    "rate_limit_bare",  # 429 without retry-after
    "overloaded",  # 529
    "server_error",  # 500, 502, 503 or 504
    "reset",  # headers and half the body, then the connection is reset
    "malformed",  # 200 whose body is not JSON
    "no_usage",  # 200, a whole message but no usage
    "empty",  # 200 end_turn with no content
    "max_tokens_tool",  # 200 max_tokens cut in the middle of a sandbox__write_file call
    "pause",  # 200 pause_turn (the next request must send the paused turn back as it is)
    "refusal",  # 200 refusal with no content
    "thinking",  # 200 with a signed thinking block before the tool call
    "huge",  # 200 with a tool call whose input is `huge_chars` long
    "prompt_too_long",  # 400 prompt is too long
    "permission",  # 403 permission_error
    "hang",  # no answer for an hour
)
TRANSIENT = ("rate_limit", "rate_limit_bare", "overloaded", "server_error", "reset", "malformed", "no_usage")
"""Faults a client must simply wait out."""


def tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False, sort_keys=True)) // 4)


def sign(thinking: str) -> str:
    return hmac.new(SIGNING_KEY, thinking.encode(), hashlib.sha256).hexdigest()


@dataclass
class HostileApi:
    """The fake's settings and everything it saw."""

    schedule: dict[str, list[str | None]] = field(default_factory=dict)
    """agent -> fault of request 1, 2, ... (None: a normal answer); '*' applies to every agent."""
    random_rate: float = 0.0
    random_faults: tuple[str, ...] = ()
    seed: int = 0
    context_limit: int = 1_000_000
    huge_chars: int = 200_000
    retry_after_s: float = 0.05
    latency_s: float = 0.0
    """Added before every answer (so that agents' calls overlap)."""
    empty_summaries_from: int | None = None
    """Summaries asked for from this one on (counted from 0) come back empty."""
    summaries: int = 0
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    faults_sent: list[tuple[str, int, str]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    billed: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    """request id -> (agent, usage) of every answer that carried a usage."""
    tool_choices: list[Any] = field(default_factory=list)
    continued: list[str] = field(default_factory=list)
    """Agents whose request after a pause_turn sent the paused turn back as the last message."""
    _cache: set[str] = field(default_factory=set)
    _paused: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, agent: str, number: int) -> str | None:
        for key in (agent, "*"):
            plan = self.schedule.get(key)
            if plan is not None and number <= len(plan) and plan[number - 1] is not None:
                return plan[number - 1]
        if self.random_rate:
            draw = random.Random(f"{self.seed}:{agent}:{number}")
            if draw.random() < self.random_rate:
                return draw.choice(self.random_faults)
        return None

    # --- what the real API refuses ---

    def problems(self, body: dict[str, Any], agent: str) -> list[str]:
        """Why the real API would answer 400 (empty when the request is valid)."""
        found: list[str] = []
        messages = body.get("messages")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            found.append("max_tokens must be a positive integer")
        if not isinstance(messages, list) or not messages:
            return [*found, "messages: at least one message is required"]
        if messages[0].get("role") != "user":
            found.append("messages: the first message must use the user role")
        breakpoints = sum("cache_control" in block for block in [*body.get("system", []), *body.get("tools", [])])
        for index, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if index and role == messages[index - 1].get("role"):
                found.append(f"messages.{index}: roles must alternate between user and assistant")
            if not content:
                found.append(f"messages.{index}: all messages must have non-empty content")
                continue
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for number, block in enumerate(blocks):
                where = f"messages.{index}.content.{number}"
                breakpoints += "cache_control" in block
                if block.get("type") == "text" and not block.get("text", "").strip():
                    found.append(f"{where}: text content blocks must contain non-whitespace text")
                if block.get("type") == "thinking":
                    if "cache_control" in block:
                        found.append(f"{where}: thinking blocks cannot be marked with cache_control")
                    if block.get("signature") != sign(block.get("thinking", "")):
                        found.append(f"{where}: invalid signature in thinking block")
            found += self._pairing(messages, index, blocks)
        last = messages[-1]
        if last.get("role") == "assistant":
            text = [b for b in last["content"] if b.get("type") == "text"] if isinstance(last["content"], list) else []
            if text and text[-1]["text"] != text[-1]["text"].rstrip():
                found.append("final assistant content cannot end with trailing whitespace")
        paused = self._paused.pop(agent, None)
        if paused is not None:
            replies = [m["content"] for m in messages if m["role"] == "assistant" and isinstance(m["content"], list)]
            if not replies or _plain(replies[-1][-len(paused) :]) != paused:
                found.append("a paused turn must be sent back as it was")
            elif last.get("role") == "assistant":
                self.continued.append(agent)
        if breakpoints > 4:
            found.append(f"a maximum of 4 blocks with cache_control may be provided; found {breakpoints}")
        return found

    @staticmethod
    def _pairing(messages: list[dict[str, Any]], index: int, blocks: list[dict[str, Any]]) -> list[str]:
        found = []
        role = messages[index]["role"]
        if role == "assistant":
            uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            after = messages[index + 1] if index + 1 < len(messages) else None
            if uses and after is None:
                found.append(f"messages.{index}: tool_use ids {uses} have no tool_result after them")
            elif uses and after is not None:
                content = after["content"] if isinstance(after["content"], list) else []
                results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
                leading = [b.get("type") for b in content[: len(results)]]
                if sorted(results) != sorted(uses) or set(leading) != {"tool_result"}:
                    found.append(f"messages.{index}: tool_use ids {uses} must be answered first by {results}")
        else:
            before = messages[index - 1] if index else None
            offered = {b.get("id") for b in before["content"] if b.get("type") == "tool_use"} if before else set()
            for block in blocks:
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in offered:
                    found.append(f"messages.{index}: unexpected tool_use_id {block.get('tool_use_id')}")
        return found

    # --- the prompt cache ---

    def usage(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        """Input split into cache read, cache write and uncached, as the API would report it."""
        head = _plain({"tools": body.get("tools"), "system": body.get("system"), "choice": body.get("tool_choice")})
        units = [head, *[block for message in body["messages"] for block in _message_blocks(message)]]
        marked = [0] + [
            number + 1 for number, block in enumerate(units[1:]) if isinstance(block, dict) and "cache_control" in block
        ]
        digest, prefixes, sizes, total = hashlib.sha256(), [], [], 0
        for unit in units:
            digest.update(json.dumps(_plain(unit), sort_keys=True).encode())
            total += tokens(_plain(unit))
            prefixes.append(digest.copy().hexdigest())
            sizes.append(total)
        with self._lock:
            read = 0
            for position in marked:
                for back in range(position, max(-1, position - CACHE_LOOKBACK_BLOCKS), -1):
                    if prefixes[back] in self._cache:
                        read = max(read, sizes[back])
                        break
            self._cache.update(prefixes[position] for position in marked)
        written = max(0, sizes[marked[-1]] - read)
        return {
            "input_tokens": total - read - written,
            "output_tokens": tokens(content),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }

    # --- the "model" ---

    def answer(self, agent: str, body: dict[str, Any], fault: str | None) -> tuple[list[dict[str, Any]], str]:
        messages = body["messages"]
        offered = {tool["name"] for tool in body.get("tools", [])}
        last = messages[-1]
        turn = sum(message["role"] == "assistant" for message in messages)
        if last["role"] == "user" and any(block.get("text") == SUMMARY_REQUEST for block in _message_blocks(last)):
            with self._lock:
                self.summaries += 1
                if self.empty_summaries_from is not None and self.summaries > self.empty_summaries_from:
                    return [], "end_turn"
            notes = f"My notes: {turn} turns so far; the notes file holds my work."
            return [{"type": "text", "text": notes}], "end_turn"
        if fault == "empty":
            return [], "end_turn"
        if fault == "refusal":
            return [], "refusal"
        if fault == "pause":
            content = [{"type": "text", "text": f"Let me think about step {turn} first."}]
            self._paused[agent] = content
            return content, "pause_turn"
        if fault == "max_tokens_tool":
            cut = {"path": "notes.md", "content": "weak = in"}
            return [{"type": "text", "text": "Rewriting my notes."}, _use("sandbox__write_file", cut)], "max_tokens"
        if turn % 4 == 3 and fault is None:
            return [{"type": "text", "text": "Let me think about what to try next."}], "end_turn"
        calls = [call for call in _plan(agent, turn, fault, self.huge_chars) if call[0] in offered]
        if not calls:
            return [{"type": "text", "text": "Nothing to do with these tools."}], "end_turn"
        content = [{"type": "text", "text": f"Step {turn}."}]
        if fault == "thinking":
            thought = f"{agent} considers step {turn}"
            content.insert(0, {"type": "thinking", "thinking": thought, "signature": sign(thought)})
        return content + [_use(name, arguments) for name, arguments in calls], "tool_use"


def _plan(agent: str, turn: int, fault: str | None, huge_chars: int) -> list[tuple[str, dict[str, Any]]]:
    if fault == "huge":
        return [("sandbox__write_file", {"path": "huge.txt", "content": "x" * huge_chars})]
    if turn % 5 == 4:
        return [("forum__feed", {}), ("sandbox__read_file", {"path": "notes.md"})]
    plans: list[list[tuple[str, dict[str, Any]]]] = [
        [("forum__feed", {})],
        [("sandbox__write_file", {"path": "notes.md", "content": f"{agent} notes after turn {turn}\n"})],
        [("sandbox__read_file", {"path": "notes.md"})],
    ]
    return plans[turn % 3]


def _use(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": arguments}


def _plain(value: Any) -> Any:
    """`value` without cache_control (which does not change what is cached)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key != "cache_control"}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _message_blocks(message: dict[str, Any]) -> list[Any]:
    content = message["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return [{"role": message["role"]}, *blocks]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: HostileApi

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path.split("?")[0] != "/v1/messages":
            return self._error(404, "not_found_error", f"no route {self.path}")
        bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
        if API_KEY not in (self.headers.get("x-api-key"), bearer):
            return self._error(401, "authentication_error", "invalid x-api-key")
        body = json.loads(raw)
        agent = str((body.get("metadata") or {}).get("user_id") or "anonymous")
        if body.get("model") not in MODELS:
            return self._error(404, "not_found_error", f"model: {body.get('model')}")
        api = self.api
        with api._lock:
            api.requests[agent] += 1
            number = api.requests[agent]
        fault = api.fault_for(agent, number)
        time.sleep(api.latency_s)
        if fault is not None:
            with api._lock:
                api.faults_sent.append((agent, number, fault))
        if fault in ("rate_limit", "rate_limit_bare", "overloaded", "server_error", "reset", "hang", "permission"):
            return self._transport_fault(fault, number)
        problems = api.problems(body, agent)
        if problems:
            with api._lock:
                api.invalid.append(f"{agent} request {number}: {'; '.join(problems)}")
            return self._error(400, "invalid_request_error", problems[0])
        api.tool_choices.append(body.get("tool_choice"))
        prompt = tokens(_plain([body.get("system"), body.get("tools"), body.get("messages")]))
        if prompt > api.context_limit or fault == "prompt_too_long":
            too_long = f"prompt is too long: {prompt} tokens > {api.context_limit} maximum"
            return self._error(400, "invalid_request_error", too_long)
        content, stop = api.answer(agent, body, fault)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
        }
        request_id = f"req_{uuid.uuid4().hex[:20]}"
        if fault == "malformed":
            return self._send(200, b'{"type": "message", "content": [', request_id)
        if fault != "no_usage":
            message["usage"] = api.usage(body, content)
            with api._lock:
                api.billed[request_id] = (agent, message["usage"])
        self._send(200, json.dumps(message).encode(), request_id)
        return None

    def _transport_fault(self, fault: str, number: int) -> None:
        if fault == "rate_limit":
            return self._error(429, "rate_limit_error", "rate limited", {"retry-after": str(self.api.retry_after_s)})
        if fault == "rate_limit_bare":
            return self._error(429, "rate_limit_error", "rate limited")
        if fault == "overloaded":
            return self._error(529, "overloaded_error", "Overloaded")
        if fault == "server_error":
            return self._error((500, 502, 503, 504)[number % 4], "api_error", "Internal server error")
        if fault == "permission":
            return self._error(403, "permission_error", "your API key does not have permission to use this model")
        if fault == "hang":
            time.sleep(3600)
            return None
        body = json.dumps({"type": "message", "content": [{"type": "text", "text": "x" * 500}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        return None

    def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
        self._send(status, body, f"req_{uuid.uuid4().hex[:20]}", headers)

    def _send(self, status: int, body: bytes, request_id: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


@contextlib.contextmanager
def hostile_api(api: HostileApi) -> Iterator[str]:
    """Serve `api` on a free loopback port in a daemon thread; yields its base URL."""
    handler = type("Handler", (_Handler,), {"api": api})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
