"""Meta's Llama API in its own format (``https://api.llama.com/v1``).

A chat call is ``POST chat/completions`` with ``max_completion_tokens``; the streamed
answer is server-sent events whose data is ``{"event": {...}}``: ``start``, ``progress``
(text deltas), ``complete`` (the stop reason) and ``metrics`` (token counts as a list of
``{"metric", "value", "unit"}``). The stream has no ``[DONE]`` marker: it just ends.
A user's image is a content item ``{"type": "image_url", "image_url": {"url": "data:..."}}``.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.base import ChatRequest, Chunk, Usage
from providers.errors import (
    ModelNotFoundError,
    ProviderError,
    UnavailableError,
    short,
)
from providers.http import HttpProvider
from providers.media import chat_message

# The API accepts temperatures from 0 to 1 only.
_MAX_TEMPERATURE = 1.0

_MODEL_MISSING = re.compile(
    r"model\b.*\b(?:not found|does not exist|unknown|not available|invalid)"
    r"|(?:unknown|invalid) model",
    re.IGNORECASE,
)


class LlamaProvider(HttpProvider):
    """The Llama API: Bearer key, SSE stream of typed events, usage in ``metrics``."""

    kind = "llama"

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        stop_reason: str | None = None
        completed = False
        usage: Usage | None = None
        events = self._events("chat/completions", _payload(request))
        # closed when the answer ends, or is stopped: its connection goes back at once
        async with contextlib.aclosing(events):
            async for data in events:
                event = self._event(data)
                delta = event.get("delta")
                if isinstance(delta, dict) and delta.get("type") == "text":
                    text = delta.get("text")
                    if isinstance(text, str) and text:
                        yield Chunk(text=text)
                if event.get("event_type") == "complete":
                    completed = True
                if isinstance(event.get("stop_reason"), str):
                    stop_reason = event["stop_reason"]
                metrics = event.get("metrics", data.get("metrics"))
                if isinstance(metrics, list):
                    usage = _usage(metrics) or usage
        if not completed and stop_reason is None:
            raise UnavailableError(f"{self.name}: the stream ended before the answer was complete")
        yield Chunk(finish_reason=stop_reason or "stop", usage=usage)

    async def list_models(self) -> list[str]:
        return await self._model_names("models", "data", "id")

    def _event(self, data: Any) -> dict[str, Any]:
        """The ``event`` object of one SSE data payload; anything else breaks the stream."""
        event = data.get("event") if isinstance(data, dict) else None
        if not isinstance(event, dict):
            raise UnavailableError(f"{self.name}: unexpected stream data: {short(str(data))}")
        return event

    def _error(self, status: int, body: str, headers: Mapping[str, str]) -> ProviderError:
        detail = _error_detail(body)
        if status in (400, 422) and _MODEL_MISSING.search(detail):
            return ModelNotFoundError(f"{self.name}: HTTP {status}: {short(detail)}", status=status)
        return super()._error(status, detail, headers)


def _payload(request: ChatRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": [chat_message(m) for m in request.messages],
        "stream": True,
    }
    if request.temperature is not None:
        payload["temperature"] = min(max(request.temperature, 0.0), _MAX_TEMPERATURE)
    if request.max_tokens is not None:
        payload["max_completion_tokens"] = request.max_tokens
    return payload


def _usage(metrics: list[Any]) -> Usage | None:
    """Token counts from the API's list of ``{"metric": name, "value": n}``."""
    values: dict[str, int] = {}
    for item in metrics:
        if isinstance(item, dict) and isinstance(item.get("value"), int | float):
            values[str(item.get("metric"))] = int(item["value"])
    prompt = values.get("num_prompt_tokens")
    completion = values.get("num_completion_tokens")
    if prompt is None and completion is None:
        return None
    return Usage(input_tokens=prompt, output_tokens=completion)


def _error_detail(body: str) -> str:
    """The human part of an error body, in any of the shapes the API gateway uses."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str):
        return error
    parts = [data[key] for key in ("title", "detail", "message") if isinstance(data.get(key), str)]
    return ": ".join(parts) if parts else body
