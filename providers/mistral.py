"""Mistral's own chat API (``https://api.mistral.ai/v1``): chat completions streamed as SSE.

It looks like OpenAI's, with differences that matter:

- the request schema forbids unknown fields (HTTP 422 ``extra_forbidden``), so only
  ``model``, ``messages``, ``stream``, ``temperature`` and ``max_tokens`` are sent, never
  ``max_completion_tokens`` or ``stream_options``;
- usage comes on the last content chunk (the one with ``finish_reason``);
- a delta's ``content`` is a string, or for reasoning models (magistral) a list of typed
  chunks where ``{"type": "text"}`` is the answer and ``{"type": "thinking"}`` is the
  model's reasoning (yielded as :attr:`Chunk.reasoning`, never as text);
- errors come as ``{"object": "error", "message": ..., "type": ...}`` whose ``message``
  may be a string, a pydantic ``{"detail": [...]}`` object, or a list of such issues; an
  unknown model is a 400 of type ``invalid_model``;
- an image is a content chunk ``{"type": "image_url", "image_url": "data:..."}`` whose
  value is the URL itself (OpenAI nests it as ``{"url": ...}``).
"""

from __future__ import annotations

import contextlib
import json
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


class MistralProvider(HttpProvider):
    """Mistral's native chat completions over httpx."""

    kind = "mistral"

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        finished = False
        events = self._events("chat/completions", self._payload(request))
        # closed when the answer ends, or is stopped: its connection goes back at once
        async with contextlib.aclosing(events):
            async for event in events:
                text, finish, usage, thought = self._parts(event)
                if finish == "error":
                    if text or thought:
                        yield Chunk(text, reasoning=thought)
                    raise UnavailableError(f"{self.name}: the model stopped with an error")
                if text or finish is not None or usage is not None or thought:
                    yield Chunk(text, finish, usage, thought)
                finished = finished or finish is not None
        if not finished:
            raise UnavailableError(f"{self.name}: the stream ended before the answer finished")

    async def list_models(self) -> list[str]:
        return await self._model_names("models", "data", "id")

    @staticmethod
    def _payload(request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": [chat_message(m, url_object=False) for m in request.messages],
            "stream": True,
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.max_tokens is not None:
            payload["max_tokens"] = request.max_tokens
        return payload

    def _parts(self, event: Any) -> tuple[str, str | None, Usage | None, str]:
        """One SSE event's text (possibly empty: a role-only delta), finish reason, usage
        and thinking. Runs for every piece of an answer: the usual event takes the short
        path."""
        if not isinstance(event, dict):
            raise UnavailableError(f"{self.name}: unexpected stream event from the API")
        choices = event.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        if not isinstance(choice, dict):
            raise UnavailableError(f"{self.name}: unexpected stream event from the API")
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            text, thought = content, ""
        else:
            text, thought = _visible_text(content), _thinking(content)
        finish = choice.get("finish_reason")
        usage = event.get("usage")
        return (
            text,
            finish if isinstance(finish, str) else None,
            None if usage is None else _usage(usage),
            thought,
        )

    def _error(self, status: int, body: str, headers: Mapping[str, str]) -> ProviderError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        message, kind = _describe(data)
        text = (f"{message} ({kind})" if kind else message) if message else body
        if kind == "invalid_model" or message.lower().startswith("invalid model"):
            return ModelNotFoundError(f"{self.name}: HTTP {status}: {short(text)}", status=status)
        return super()._error(status, text, headers)


def _visible_text(content: Any) -> str:
    """The answer text of a delta's content: a string, or the ``text`` parts of a list."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type", "text") == "text"
        and isinstance(part.get("text"), str)
    )


def _thinking(content: Any) -> str:
    """The reasoning in a delta's content: the text of its ``thinking`` chunks."""
    if not isinstance(content, list):
        return ""
    found: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                found.append(inner)
            elif isinstance(inner, list):
                found.append(_visible_text(inner))
    return "".join(found)


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    return Usage(
        input_tokens=prompt if isinstance(prompt, int) else None,
        output_tokens=completion if isinstance(completion, int) else None,
    )


def _describe(data: Any) -> tuple[str, str]:
    """(readable message, error type) from any of Mistral's error body shapes."""
    if not isinstance(data, dict):
        return "", ""
    kind = data.get("type")
    message = data.get("message", data.get("detail"))
    return _flatten(message), kind if isinstance(kind, str) else ""


def _flatten(value: Any) -> str:
    """A message that may be a string, a JSON string, ``{"detail": ...}`` or a list of issues."""
    if isinstance(value, str):
        if value.startswith("{"):
            try:
                return _flatten(json.loads(value))
            except ValueError:
                return value
        return value
    if isinstance(value, dict):
        return _flatten(value["detail"]) if "detail" in value else json.dumps(value)
    if isinstance(value, list):
        return "; ".join(_issue(item) for item in value)
    return "" if value is None else str(value)


def _issue(item: Any) -> str:
    """One pydantic validation issue as ``where: what`` (``messages.0.user.name: ...``)."""
    if not isinstance(item, dict):
        return str(item)
    loc = [str(part) for part in item.get("loc", []) if part != "body"]
    msg = str(item.get("msg", item.get("type", "")))
    return f"{'.'.join(loc)}: {msg}" if loc else msg
