"""Google's Gemini API in its own format (``https://generativelanguage.googleapis.com/v1beta``).

Checked against Google's public API reference:

- https://ai.google.dev/api/generate-content: ``models.streamGenerateContent`` (with
  ``alt=sse``: server-sent events, each data a whole ``GenerateContentResponse``, no
  ``[DONE]``), ``models.generateContent``, ``Candidate.finishReason``, ``PromptFeedback``,
  ``UsageMetadata``;
- https://ai.google.dev/gemini-api/docs/text-generation: ``systemInstruction``,
  ``contents`` with roles ``user`` and ``model``, ``generationConfig``;
- https://ai.google.dev/gemini-api/docs/thinking: ``thinkingConfig.includeThoughts``;
  thought summaries come as parts with ``"thought": true``;
- https://ai.google.dev/gemini-api/docs/image-generation: images in and out as
  ``inlineData`` parts (``mimeType``, base64 ``data``), ``responseModalities`` with
  ``IMAGE``; a photo and an instruction in one turn edit the photo;
- https://ai.google.dev/gemini-api/docs/troubleshooting: the statuses (400
  INVALID_ARGUMENT and FAILED_PRECONDITION, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429
  RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED) in the body
  ``{"error": {"code", "message", "status", "details": [...]}}``; a 429's wait is a
  ``google.rpc.RetryInfo`` detail's ``retryDelay`` ("37s"); a wrong key is a 400 whose
  ``google.rpc.ErrorInfo`` detail says ``API_KEY_INVALID``;
- https://ai.google.dev/api/models: ``GET models`` lists ``{"models": [{"name":
  "models/..."}], "nextPageToken"}``.

On the wire: ``POST {base_url}/models/{name}:streamGenerateContent?alt=sse``, the key in
``x-goog-api-key``. The system prompt goes in ``systemInstruction``; the history in
``contents`` (roles ``user``/``model``, one content per turn: consecutive turns of one
role are joined); a user's images as ``inlineData`` parts beside the text. Thought parts
are surfaced as :attr:`Chunk.reasoning`, never as text. The last event's
``finishReason`` ends the answer: STOP is ``stop``, MAX_TOKENS ``length``; SAFETY,
RECITATION and the other blocks raise :class:`DeclinedError` (after any text already
sent), as does a prompt blocked before the model ran (``promptFeedback.blockReason``).
A block before any text reaches the user is a refusal, and the bot gives the request back
(``Outcome.free``: no text, no billable work counted): Google's reference says a blocked
prompt never reaches the model; a response blocked after the model ran may bill its input
tokens, a cost the operator carries rather than charging a user for nothing shown. A
block after text counts, like any answer cut short. ``usageMetadata`` becomes the usage:
``promptTokenCount`` in, ``candidatesTokenCount`` plus ``thoughtsTokenCount`` out
(thoughts are billed as output). A stream that ends without a finish reason was cut.

Images are drawn with ``generateContent`` and ``responseModalities: ["TEXT", "IMAGE"]``;
the first ``inlineData`` part of the answer is the picture.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from providers.base import ChatRequest, Chunk, Image, Message, ProviderConfig, Usage
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    DeclinedError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    error_for_status,
    parse_retry_after,
    short,
)
from providers.http import HttpProvider
from providers.media import b64, images_of

# The least time an image is waited for (it arrives whole, after a long silence).
IMAGE_TIMEOUT = 180.0

# Finish reasons that mean the answer was blocked, not finished.
_DECLINED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_THINKING = re.compile(r"think", re.IGNORECASE)
_MAX_PAGES = 20  # of GET models, 1000 names each


@dataclass(slots=True)
class _Progress:
    """What the stream has said so far besides text."""

    finish: str | None = None
    declined: str | None = None
    meta: Any = None  # the latest usageMetadata (every event repeats it, growing)


class GeminiProvider(HttpProvider):
    """Gemini's native API over httpx: SSE of whole responses, thoughts apart."""

    kind = "gemini"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        # Models that refused thinkingConfig (older ones): asked without it from then on.
        self._no_thoughts: set[str] = set()

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        path = f"{_model_path(request.model)}:streamGenerateContent?alt=sse"
        thoughts = request.model not in self._no_thoughts
        events = self._events(path, _payload(request, thoughts=thoughts))
        progress = _Progress()
        try:
            try:
                event = await anext(events)
            except BadRequestError as exc:
                if not thoughts or not _THINKING.search(str(exc)):
                    raise
                self._no_thoughts.add(request.model)  # and ask again, without thoughts
                await events.aclose()
                events = self._events(path, _payload(request, thoughts=False))
                event = await anext(events)
            chunk = self._chunk(event, progress)
            if chunk is not None:
                yield chunk
            if progress.declined is not None:
                raise self._declined(progress.declined)
            async for event in events:
                chunk = self._chunk(event, progress)
                if chunk is not None:
                    yield chunk
                if progress.declined is not None:
                    raise self._declined(progress.declined)
        except StopAsyncIteration:
            raise UnavailableError(f"{self.name}: the API sent no events") from None
        finally:
            with contextlib.suppress(ProviderError):
                await events.aclose()
        if progress.finish is None:
            raise UnavailableError(f"{self.name}: the stream ended before the answer finished")
        yield Chunk("", progress.finish, _usage(progress.meta))

    def _chunk(self, event: Any, progress: _Progress) -> Chunk | None:
        """The text and thoughts of one streamed response; its finish reason and usage
        are noted in ``progress``. Raises for an error event, a blocked prompt, or data
        that is not a response. Runs for every piece of an answer: the usual event (one
        text part) takes the short path."""
        if type(event) is not dict:
            raise UnavailableError(f"{self.name}: a streamed event is not a JSON object")
        meta = event.get("usageMetadata")
        if meta is not None:
            progress.meta = meta
        candidates = event.get("candidates")
        if not candidates:
            if "error" in event:
                raise self._body_error(500, event, {})
            feedback = event.get("promptFeedback")
            blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if blocked:
                raise DeclinedError(f"{self.name}: the prompt was blocked ({blocked})", status=200)
            return None
        candidate = candidates[0] if type(candidates) is list else None
        if type(candidate) is not dict:
            raise UnavailableError(f"{self.name}: a streamed event has malformed candidates")
        reason = candidate.get("finishReason")
        if reason is not None and reason != "FINISH_REASON_UNSPECIFIED":
            if reason in _DECLINED:
                progress.declined = reason
            else:
                progress.finish = _FINISH.get(reason) or str(reason).lower()
        content = candidate.get("content")
        parts = content.get("parts") if type(content) is dict else None
        if type(parts) is list and len(parts) == 1:  # the usual event
            part = parts[0]
            value = part.get("text") if type(part) is dict else None
            if type(value) is not str or not value:
                return None
            if part.get("thought") is True:
                return Chunk("", None, None, value)
            return Chunk(value)
        text, thought = _texts(content)
        if not text and not thought:
            return None
        return Chunk(text, None, None, thought)

    def _declined(self, reason: str) -> DeclinedError:
        return DeclinedError(f"{self.name}: the answer was blocked ({reason})", status=200)

    async def list_models(self) -> list[str]:
        """``GET models``, every page; the names without their ``models/`` prefix."""
        names: list[str] = []
        token = ""
        for _ in range(_MAX_PAGES):
            query = "models?pageSize=1000" + (f"&pageToken={quote(token)}" if token else "")
            data = await self._get_json(query)
            items = data.get("models") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise UnavailableError(f"{self.name}: unexpected model list from the API")
            names += [
                m["name"].removeprefix("models/")
                for m in items
                if isinstance(m, dict) and isinstance(m.get("name"), str)
            ]
            token = data.get("nextPageToken") or ""
            if not isinstance(token, str) or not token:
                break
        return names

    async def generate_image(
        self, model: str, prompt: str, images: Sequence[Image] = (), *, api: str = "images"
    ) -> bytes:
        """``generateContent`` with image output: ``prompt`` (and the ``images`` to edit,
        as ``inlineData`` beside it) in, the first image part's bytes out. A model that
        answers with words only declined to draw. Retried like chat."""
        payload = {
            "contents": [{"role": "user", "parts": _parts(prompt, images)}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
        }
        path = f"{_model_path(model)}:generateContent"
        timeout = max(self.config.timeout, IMAGE_TIMEOUT)
        return await self._retrying(lambda: self._draw_once(path, payload, timeout))

    async def _draw_once(self, path: str, payload: dict[str, Any], wait: float) -> bytes:
        data = await self._post_json(path, payload, read_timeout=wait)
        if not isinstance(data, dict):
            raise UnavailableError(f"{self.name}: the API's answer is not a JSON object")
        feedback = data.get("promptFeedback")
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if blocked:
            raise DeclinedError(f"{self.name}: the prompt was blocked ({blocked})", status=200)
        candidates = data.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(candidate, dict):
            raise UnavailableError(f"{self.name}: the API sent no candidate")
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                try:
                    image = base64.b64decode(inline["data"], validate=True)
                except binascii.Error:
                    raise UnavailableError(f"{self.name}: malformed base64 image") from None
                if image:
                    return image
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason in _DECLINED:
            raise self._declined(reason)
        text, _ = _texts(content)
        raise DeclinedError(f"{self.name}: no image in the answer: {short(text)}", status=200)

    def _error(self, status: int, body: str, headers: Mapping[str, str]) -> ProviderError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, list) and data:  # a JSON-array stream (no alt=sse) fails so
            data = data[0]
        if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
            return super()._error(status, body, headers)
        return self._body_error(status, data, headers)

    def _body_error(
        self, status: int, data: Mapping[str, Any], headers: Mapping[str, str]
    ) -> ProviderError:
        """Google's ``{"error": {"code", "message", "status", "details"}}``, mapped by its
        status name first, then by the HTTP status."""
        error = data.get("error")
        if not isinstance(error, dict):
            message = str(error)
            return UnavailableError(f"{self.name}: error in the stream: {short(message)}")
        code = error.get("code")
        if isinstance(code, int) and 400 <= code <= 599:
            status = code
        name = str(error.get("status") or "")
        message = str(error.get("message") or name or "error")
        text = f"{self.name}: HTTP {status} {name}: {short(message)}".replace("  ", " ")
        details = error.get("details")
        details = details if isinstance(details, list) else []
        reasons = {d.get("reason") for d in details if isinstance(d, dict)}
        if "API_KEY_INVALID" in reasons or name in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return AuthenticationError(text, status=status)
        if name == "FAILED_PRECONDITION":  # billing or region: the operator's account
            return AuthenticationError(text, status=status)
        if name == "NOT_FOUND":
            return ModelNotFoundError(text, status=status)
        if name == "RESOURCE_EXHAUSTED" or status == 429:
            wait = _retry_delay(details)
            if wait is None:
                wait = parse_retry_after(headers.get("retry-after"))
            return RateLimitedError(text, status=status, retry_after=wait)
        if name == "DEADLINE_EXCEEDED":
            return ProviderTimeoutError(text, status=status)
        return error_for_status(status, f"{name} {message}".strip(), provider=self.name)


def _model_path(name: str) -> str:
    """``models/<name>``, whether the catalog wrote the prefix or not."""
    return name if name.startswith("models/") else f"models/{name}"


def _payload(request: ChatRequest, *, thoughts: bool) -> dict[str, Any]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            if message.content:
                system.append(message.content)
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _message_parts(message)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    payload: dict[str, Any] = {"contents": contents}
    if system:
        payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if thoughts:
        config["thinkingConfig"] = {"includeThoughts": True}
    if config:
        payload["generationConfig"] = config
    return payload


def _message_parts(message: Message) -> list[dict[str, Any]]:
    return _parts(message.content, images_of(message))


def _parts(text: str, images: Sequence[Image]) -> list[dict[str, Any]]:
    """A turn's parts: its text (an empty one is left out: the API refuses it), then one
    ``inlineData`` part per image."""
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for image in images:
        mime = image.mime if image.mime.startswith("image/") else "image/jpeg"
        parts.append({"inlineData": {"mimeType": mime, "data": b64(image)}})
    return parts


def _texts(content: Any) -> tuple[str, str]:
    """(answer text, thought text) of a candidate's content."""
    parts = content.get("parts") if isinstance(content, dict) else None
    if not parts or not isinstance(parts, list):
        return "", ""
    if len(parts) == 1:  # the usual event: one text part
        part = parts[0]
        value = part.get("text") if isinstance(part, dict) else None
        if not isinstance(value, str):
            return "", ""
        return ("", value) if part.get("thought") is True else (value, "")
    text: list[str] = []
    thought: list[str] = []
    for part in parts:
        value = part.get("text") if isinstance(part, dict) else None
        if isinstance(value, str):
            (thought if part.get("thought") is True else text).append(value)
    return "".join(text), "".join(thought)


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = meta.get("promptTokenCount")
    answer = meta.get("candidatesTokenCount")
    thoughts = meta.get("thoughtsTokenCount")
    output: int | None = None
    if isinstance(answer, int) or isinstance(thoughts, int):
        output = (answer if isinstance(answer, int) else 0) + (
            thoughts if isinstance(thoughts, int) else 0
        )
    if not isinstance(prompt, int) and output is None:
        return None
    return Usage(input_tokens=prompt if isinstance(prompt, int) else None, output_tokens=output)


def _retry_delay(details: list[Any]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail's ``retryDelay`` ("37s", "0.5s")."""
    for detail in details:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith(
            "google.rpc.RetryInfo"
        ):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                return max(0.0, float(delay[:-1]))
    return None
