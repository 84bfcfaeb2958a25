"""A local Ollama server through its own ``/api/chat`` (no key by default).

The answer is newline-delimited JSON: one object per piece with ``message.content`` and
``"done": false``, then a last one with ``"done": true``, ``done_reason`` and the token
counts (``prompt_eval_count``, ``eval_count``); a thinking model's thoughts arrive in
``message.thinking`` (yielded as :attr:`Chunk.reasoning`). A failure after the ``200`` arrives as a
line ``{"error": "..."}``; failures before it are a status with the same body. A user's
images ride on the message as ``images``: a list of base64 strings (no ``data:`` prefix).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from providers.base import ChatRequest, Chunk, Message, Usage
from providers.errors import (
    ModelNotFoundError,
    ProviderError,
    UnavailableError,
    short,
)
from providers.http import HttpProvider
from providers.media import b64, images_of

_MODEL_MISSING = re.compile(r"model\b.*\bnot found", re.IGNORECASE)


class OllamaProvider(HttpProvider):
    """Ollama's native chat API: NDJSON stream, sampling settings under ``options``."""

    kind = "ollama"
    needs_key = False

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        events = self._events("api/chat", _payload(request), sse=False)
        # closed when the answer ends, or is stopped: its connection goes back at once
        async with contextlib.aclosing(events):
            async for data in events:
                if not isinstance(data, dict):
                    raise UnavailableError(f"{self.name}: unexpected stream line from the API")
                if "error" in data:
                    raise self._stream_error(str(data["error"]))
                text, thought = _content(data)
                if data.get("done") is True:
                    reason = data.get("done_reason")
                    yield Chunk(
                        text=text,
                        finish_reason=reason if isinstance(reason, str) and reason else "stop",
                        usage=_usage(data),
                        reasoning=thought,
                    )
                    return
                if text or thought:
                    yield Chunk(text, reasoning=thought)
        raise UnavailableError(f"{self.name}: the stream ended before the answer was complete")

    async def list_models(self) -> list[str]:
        return await self._model_names("api/tags", "models", "name")

    def _stream_error(self, message: str) -> ProviderError:
        """An ``{"error": ...}`` line after the 200: the model is gone, or the server failed."""
        text = f"{self.name}: error in the stream: {short(message)}"
        if _MODEL_MISSING.search(message):
            return ModelNotFoundError(text)
        return UnavailableError(text)

    def _error(self, status: int, body: str, headers: Mapping[str, str]) -> ProviderError:
        return super()._error(status, _error_detail(body), headers)


def _payload(request: ChatRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
    }
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if options:
        payload["options"] = options
    return payload


def _message(message: Message) -> dict[str, Any]:
    """One message on the wire; a user's images go in its ``images`` list, as base64."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    images = images_of(message)
    if images:
        wire["images"] = [b64(image) for image in images]
    return wire


def _content(data: Mapping[str, Any]) -> tuple[str, str]:
    """(answer text, thinking) of one line: ``message.content`` and ``message.thinking``."""
    message = data.get("message")
    if not isinstance(message, dict):
        return "", ""
    content, thinking = message.get("content"), message.get("thinking")
    return (
        content if isinstance(content, str) else "",
        thinking if isinstance(thinking, str) else "",
    )


def _usage(data: Mapping[str, Any]) -> Usage | None:
    prompt = data.get("prompt_eval_count")
    completion = data.get("eval_count")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return Usage(
        input_tokens=prompt if isinstance(prompt, int) else None,
        output_tokens=completion if isinstance(completion, int) else None,
    )


def _error_detail(body: str) -> str:
    """Ollama's error bodies are ``{"error": "..."}``; anything else is logged as it came."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else body
