"""Model calls through the Messages API (the anthropic SDK), with prompt caching and retries.

The same code talks to Claude and to the local scripted researcher (see client/backends/
scripted.py): only the base URL differs. The SDK's own retries are off so that every retry is
recorded and the backoff is ours: exponential with jitter, honouring `retry-after`, for 429,
529, other 5xx, timeouts, lost connections and malformed answers.
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

from client.costs import Usage
from client.manifest import Retry

logger = logging.getLogger(__name__)

CACHE = {"type": "ephemeral"}
BLOCK_TYPES = {"text", "tool_use", "thinking", "redacted_thinking"}
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
    """A model call that failed for good: not retryable, or out of attempts."""

    def __init__(self, message: str, *, prompt_too_long: bool = False) -> None:
        super().__init__(message)
        self.prompt_too_long = prompt_too_long


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
    attempt: int
    error: str
    status: int | None
    wait_s: float


OnRetry = Callable[[RetryNotice], Awaitable[None] | None]


class MessagesBackend:
    """A shared SDK client; each call names its agent in `metadata.user_id`."""

    def __init__(self, *, api_key: str, base_url: str | None, retry: Retry, timeout_s: float = 600.0) -> None:
        self._client = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s)
        self._retry = retry

    async def close(self) -> None:
        await self._client.close()

    async def create(
        self,
        *,
        agent: str,
        model: str,
        max_tokens: int,
        system: str,
        tools: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tool_choice: dict[str, Any] | None = None,
        on_retry: OnRetry | None = None,
    ) -> Reply:
        """One model call, retried on transient failures; raises `ModelError` when it cannot succeed."""
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": [{"type": "text", "text": system, "cache_control": CACHE}],
            "tools": cached_tools(tools),
            "messages": cached_messages(messages),
            "metadata": {"user_id": agent},
        }
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = await self._client.messages.with_raw_response.create(**request)
                message = await response.parse()
                return _reply(message, time.monotonic() - started, response.headers.get("request-id"))
            except anthropic.APIStatusError as error:
                if not _retryable_status(error.status_code):
                    too_long = error.status_code == 400 and "too long" in str(error).lower()
                    raise ModelError(f"{error.status_code}: {error}", prompt_too_long=too_long) from None
                failure, status, hint = (
                    f"{error.status_code} {error.type or ''}".strip(),
                    error.status_code,
                    _retry_after(error),
                )
            except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, MalformedResponse) as error:
                failure, status, hint = f"{type(error).__name__}: {error}", None, None
            except ValueError as error:  # the SDK could not decode the body
                failure, status, hint = f"malformed response: {error}", None, None
            if attempt >= self._retry.max_attempts:
                raise ModelError(f"gave up after {attempt} attempts; last: {failure}")
            wait = hint if hint is not None else self._backoff(attempt)
            logger.info("%s: model call failed (%s); retry %d in %.1f s", agent, failure, attempt, wait)
            if on_retry is not None:
                result = on_retry(
                    RetryNotice(attempt=attempt, error=failure[:500], status=status, wait_s=round(wait, 2))
                )
                if result is not None:
                    await result
            await anyio.sleep(wait)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._retry.max_s, self._retry.initial_s * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


def cached_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools with a cache breakpoint on the last: tools and system are the stable prefix."""
    if not tools:
        return []
    return [*tools[:-1], {**tools[-1], "cache_control": CACHE}]


def cached_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with a breakpoint on the last block, so the next turn reads the conversation from cache."""
    if not messages:
        return []
    last = copy.deepcopy(messages[-1])
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    content[-1] = {**content[-1], "cache_control": CACHE}
    return [*messages[:-1], {**last, "content": content}]


def _retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _retry_after(error: anthropic.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    try:
        return min(float(value), 600.0) if value is not None else None
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
