"""Model calls through the Messages API (the anthropic SDK), with prompt caching and retries.

The same code talks to Claude and to the local scripted researcher (see client/backends/
scripted.py): only the base URL differs. The SDK's own retries are off so that every retry is
recorded and the backoff is ours: capped exponential with jitter, honouring `retry-after` (plus
jitter), for 408, 409, 429, 529, other 5xx, timeouts, lost connections and malformed answers,
until the run's deadline. A bad key, a missing permission or an unknown model (401, 403, 404)
concern every agent alike and raise `AccessError`, which stops the run.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import anyio
import httpx2

from client.costs import Usage
from client.run_manifest import Retry
from client.tls import shared_ssl_context

logger = logging.getLogger(__name__)

CACHE = {"type": "ephemeral"}
THINKING_TYPES = {"thinking", "redacted_thinking"}
BLOCK_TYPES = {"text", "tool_use", *THINKING_TYPES}
STOP_REASONS = {
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}


class ModelError(Exception):
    """A model call that cannot succeed by asking again (e.g. 400 invalid request): it ends this agent's turn."""

    def __init__(self, message: str, *, prompt_too_long: bool = False) -> None:
        super().__init__(message)
        self.prompt_too_long = prompt_too_long


class AccessError(ModelError):
    """The key, the permission or the model is wrong: every agent would fail alike, so the run stops."""


class MalformedResponse(Exception):
    """An answer that is not a usable Messages API response."""


@dataclass(frozen=True)
class Reply:
    """One model answer: content blocks as plain dicts (ready to send back), why it stopped, usage."""

    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage
    model_s: float
    request_id: str | None


@dataclass(frozen=True)
class RetryNotice:
    """A failed call about to be tried again: what failed, and how long the outage has lasted."""

    attempt: int
    error: str
    status: int | None
    wait_s: float
    request_id: str | None
    failing_since: float
    """time.time() of the first failure of this call."""


OnRetry = Callable[[RetryNotice], Awaitable[None] | None]

ACCESS_ADVICE = {
    401: "the Messages API rejected the API key; set a valid ANTHROPIC_API_KEY",
    403: "the API key is not allowed to do this; use a key with access to the Messages API and the model",
    404: "the Messages API does not know model {model!r} (or its address is wrong); fix the model (--model or the"
    " manifest's model) or ANTHROPIC_BASE_URL",
}


AGENTS_PER_CLIENT = 32
"""Agents that share one SDK client, and so one connection pool. The pool looks at each of its
connections for every request, so one pool for a thousand agents waiting on the model at once
made every call cost time in proportion to the team (bench/README.md)."""


class MessagesBackend:
    """SDK clients shared by groups of agents; each call names its agent in `metadata.user_id`.

    Transient failures are retried without a limit of attempts: the agent's deadline (a cancel
    scope around its turn) or a person stopping it is what ends an outage that does not end.
    """

    def __init__(self, *, api_key: str, base_url: str | None, retry: Retry, timeout_s: float = 600.0) -> None:
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "max_retries": 0,
            "timeout": timeout_s,
        }
        self._clients: list[anthropic.AsyncAnthropic] = []
        self._client_of: dict[str, anthropic.AsyncAnthropic] = {}
        self._retry = retry

    def _client(self, agent: str) -> anthropic.AsyncAnthropic:
        """The SDK client of `agent`'s group (see AGENTS_PER_CLIENT), made when the group starts."""
        client = self._client_of.get(agent)
        if client is None:
            if len(self._client_of) >= AGENTS_PER_CLIENT * len(self._clients):
                http = anthropic.DefaultAsyncHttpxClient(verify=shared_ssl_context())
                self._clients.append(anthropic.AsyncAnthropic(**self._options, http_client=http))
            client = self._client_of[agent] = self._clients[-1]
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.close()

    async def create(
        self,
        *,
        agent: str,
        model: str,
        max_tokens: int,
        system: str,
        tools: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        on_retry: OnRetry | None = None,
    ) -> Reply:
        """One model call, retried on transient failures; raises `ModelError` when asking again cannot help."""
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": CACHE}],
            "tools": cached_tools(tools),
            "messages": cached_messages(messages),
            "metadata": {"user_id": agent},
        }
        attempt = 0
        failing_since = 0.0
        while True:
            attempt += 1
            started = time.monotonic()
            request_id: str | None = None
            try:
                response = await self._client(agent).messages.with_raw_response.create(**request)
                request_id = response.headers.get("request-id")
                message = await response.parse()
                return _reply(message, time.monotonic() - started, request_id)
            except anthropic.APIStatusError as error:
                request_id = error.request_id
                failure = _describe(error)
                if not _retryable_status(error.status_code):
                    raise _final_error(error, failure, model) from None
                status, hint = error.status_code, _retry_after(error)
            except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, MalformedResponse) as error:
                failure, status, hint = f"{type(error).__name__}: {error}", None, None
            except (ValueError, httpx2.TransportError) as error:  # the body could not be read or decoded
                failure, status, hint = f"malformed response: {type(error).__name__}: {error}", None, None
            failing_since = failing_since or time.time()
            wait = self._wait(attempt, hint)
            logger.info("%s: model call failed (%s); retry %d in %.1f s", agent, failure, attempt, wait)
            if on_retry is not None:
                notice = RetryNotice(
                    attempt=attempt,
                    error=failure[:500],
                    status=status,
                    wait_s=round(wait, 3),
                    request_id=request_id,
                    failing_since=failing_since,
                )
                result = on_retry(notice)
                if result is not None:
                    await result
            await anyio.sleep(wait)

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """Capped exponential backoff with jitter; after a `retry-after`, that plus jitter (agents told the
        same time by the API must not all come back at the same instant)."""
        if retry_after is not None:
            return retry_after + random.uniform(0, max(self._retry.initial_s, retry_after / 4))
        ceiling: float = min(self._retry.max_s, self._retry.initial_s * 2 ** min(attempt - 1, 32))  # int ** int is Any
        return ceiling * random.uniform(0.5, 1.0)


def cached_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools with a cache breakpoint on the last: tools and system are the stable prefix."""
    if not tools:
        return []
    return [*tools[:-1], {**tools[-1], "cache_control": CACHE}]


def cached_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a breakpoint on the last block, so the next turn reads the conversation from cache.

    A thinking block cannot carry a breakpoint (the one before it does), and a conversation that
    ends with the model's own message (continuing a paused turn) must not end in whitespace.
    """
    if not messages:
        return []
    last = copy.deepcopy(messages[-1])
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if last["role"] == "assistant" and content and content[-1].get("type") == "text":
        content[-1]["text"] = content[-1]["text"].rstrip()
    for index in range(len(content) - 1, -1, -1):
        if content[index].get("type") not in THINKING_TYPES:
            content[index] = {**content[index], "cache_control": CACHE}
            break
    return [*messages[:-1], {**last, "content": content}]


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _describe(error: anthropic.APIStatusError) -> str:
    """'529 overloaded_error: Overloaded': the status, the error's type and the API's own message."""
    kind = f" {error.type}" if error.type else ""
    message = error.api_message or error.response.reason_phrase or "no message"
    return f"{error.status_code}{kind}: {message}"


def _final_error(error: anthropic.APIStatusError, failure: str, model: str) -> ModelError:
    if error.status_code in ACCESS_ADVICE:
        advice = ACCESS_ADVICE[error.status_code].format(model=model)
        return AccessError(f"The run stopped because {advice} ({failure}); then continue it with aar run --resume.")
    too_long = error.status_code == 413 or (error.status_code == 400 and "too long" in failure.lower())
    return ModelError(failure, prompt_too_long=too_long)


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), 600.0) if value is not None else None
    except ValueError:
        return None


def _reply(message: Any, model_s: float, request_id: str | None) -> Reply:
    """Check an SDK message (built without validation) and turn it into plain dicts."""
    content = getattr(message, "content", None)
    stop_reason = getattr(message, "stop_reason", None)
    usage = getattr(message, "usage", None)
    if not isinstance(content, list) or usage is None or stop_reason not in STOP_REASONS:
        raise MalformedResponse(f"missing or invalid content, usage or stop_reason ({stop_reason!r})")
    blocks = []
    for block in content:
        data = block.model_dump(mode="json", exclude_none=True) if hasattr(block, "model_dump") else block
        if not isinstance(data, dict) or data.get("type") not in BLOCK_TYPES:
            raise MalformedResponse(f"unexpected content block {str(data)[:200]}")
        if data["type"] == "tool_use" and not (
            isinstance(data.get("id"), str)
            and isinstance(data.get("name"), str)
            and isinstance(data.get("input"), dict)
        ):
            raise MalformedResponse(f"tool_use block without id, name or input: {str(data)[:200]}")
        blocks.append(data)
    if stop_reason == "tool_use" and not any(block["type"] == "tool_use" for block in blocks):
        raise MalformedResponse("stop_reason tool_use without a tool_use block")
    return Reply(
        content=blocks, stop_reason=stop_reason, usage=Usage.from_api(usage), model_s=model_s, request_id=request_id
    )
