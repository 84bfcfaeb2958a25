"""A fake Mistral API (``/v1/chat/completions``, ``/v1/models``) speaking its wire format.

What it copies from the real API, because adapters trip over exactly these:

- the request schema forbids extra fields: an unknown top-level or message field gets
  Mistral's 422 ``extra_forbidden`` body (``max_completion_tokens``, ``stream_options``);
- the stream is SSE ``data: {chat.completion.chunk}`` lines ending in ``data: [DONE]``,
  the first delta carries the role, and usage rides on the last content chunk, the one
  with ``finish_reason``; there is no separate usage chunk;
- reasoning models send ``content`` as a list of typed chunks, ``thinking`` before ``text``
  (``MistralReply(thinking=[...])``);
- errors: 401 ``{"message": "Unauthorized", "request_id": ...}`` (``{"detail": ...}`` on
  ``/v1/models``), an unknown model is a 400 of type ``invalid_model``, other statuses the
  ``{"object": "error", "message", "type", "param", "code"}`` body;
- an in-stream failure (``Reply.error_after``) ends the stream with ``finish_reason: "error"``;
- a user message's ``content`` may be a list of ``{"type": "text", "text"}`` and
  ``{"type": "image_url", "image_url": "<url>"}`` chunks (``image_url`` may also be
  ``{"url": ...}``); chunks of another shape, or in another role, get the 422; each image
  is recorded in ``images`` (a :class:`~tests.doubles.media.SeenImage`), and a data URL
  that is not base64 gets a 400.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply
from tests.doubles.media import SeenImage, decode_data_url

# The top-level fields Mistral's chat completion request schema accepts.
CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "prompt_mode",
        "safe_prompt",
    }
)
# The fields each message role accepts.
MESSAGE_FIELDS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
DEFAULT_MODELS = ("mistral-small-latest", "mistral-large-latest", "magistral-medium-latest")

_ERROR_TYPES = {400: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limited"}


@dataclass
class MistralReply(Reply):
    """A reply with Mistral-only behaviour.

    ``thinking``: a reasoning model's thoughts. When set, every delta's content is a list
    of typed chunks, as magistral models send it: the thinking pieces first, then the
    answer's text pieces. ``body``: a raw error body to send with ``status`` instead of
    the standard one (the API's older or newer error shapes, a proxy's HTML page).
    ``end_after``: end the stream cleanly (``[DONE]``) after this many pieces with no
    ``finish_reason``, as a proxy that cuts an answer short would.
    """

    thinking: list[str] | None = None
    body: str | None = None
    end_after: int | None = None


class MistralDouble(LLMDouble):
    """A real aiohttp server on 127.0.0.1 answering like ``https://api.mistral.ai``."""

    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__(key)
        self.images: list[SeenImage] = []  # every image a chat request carried, in order
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)

    @property
    def base_url(self) -> str:
        """What the catalog's ``base_url`` would be."""
        return f"{self.url}/v1"

    async def _models(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response({"detail": "Unauthorized"}, status=401)
        names = sorted(self.known_models) if self.known_models is not None else DEFAULT_MODELS
        created = int(time.time())
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "mistralai",
                "capabilities": {"completion_chat": True, "function_calling": True},
                "max_context_length": 131072,
                "aliases": [],
            }
            for name in names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return web.json_response(
                {"message": "Unauthorized", "request_id": uuid.uuid4().hex}, status=401
            )
        try:
            body = await request.json()
        except ValueError:
            return _invalid([_issue("json_invalid", [], "JSON decode error", None)])
        issues = _validate(body)
        if issues:
            return _invalid(issues)
        model = body["model"]
        if not self.model_exists(model):
            return _error(400, f"Invalid model: {model}", "invalid_model", code="1500")
        for message in body["messages"]:
            for url in _image_urls(message.get("content")):
                try:
                    decoded = decode_data_url(url)
                except ValueError:
                    return _error(400, "Image could not be decoded", "invalid_request_error")
                mime, data = decoded if decoded is not None else (None, None)
                self.images.append(SeenImage(model, message["role"], url, data, mime))
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            if isinstance(reply, MistralReply) and reply.body is not None:
                return web.Response(text=reply.body, status=reply.status, headers=headers)
            kind = _ERROR_TYPES.get(reply.status, "internal_error")
            return _error(reply.status, reply.error, kind, headers=headers)
        text = self.answer_text(reply, body["messages"])
        if body.get("stream"):
            return await self._stream(request, reply, model, text)
        if reply.malformed:
            return web.Response(text="{'id': not json", content_type="application/json")
        return web.json_response(_completion(reply, model, text))

    async def _stream(
        self, request: web.Request, reply: Reply, model: str, text: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        stream = _Stream(response, model)
        await stream.send({"role": "assistant", "content": ""})
        if reply.malformed:
            await response.write(b'data: {"id": "cmpl", "choices": [\n\n')
            await response.write_eof()
            return response
        thinking = reply.thinking if isinstance(reply, MistralReply) else None
        end_after = reply.end_after if isinstance(reply, MistralReply) else None
        for piece in thinking or []:
            thought = {"type": "thinking", "thinking": [{"type": "text", "text": piece}]}
            await stream.send({"content": [thought]})
            await self.pause(reply.chunk_delay)
        pieces = self.pieces(reply, text)
        for index, piece in enumerate(pieces):
            if reply.cut_after is not None and index >= reply.cut_after:
                self.cut(request)
                return response
            if reply.error_after is not None and index >= reply.error_after:
                await stream.send({"content": ""}, finish="error")
                return await stream.done()
            if end_after is not None and index >= end_after:
                return await stream.done()
            content: Any = [{"type": "text", "text": piece}] if thinking else piece
            last = index == len(pieces) - 1
            usage = reply.usage if last else None
            await stream.send({"content": content}, finish="stop" if last else None, usage=usage)
            if not last:
                await self.pause(reply.chunk_delay)
        return await stream.done()


class _Stream:
    """Writes one completion's SSE chunks, all with the same id and creation time."""

    def __init__(self, response: web.StreamResponse, model: str) -> None:
        self.response = response
        self.model = model
        self.id = uuid.uuid4().hex
        self.created = int(time.time())

    async def send(
        self,
        delta: dict[str, Any],
        *,
        finish: str | None = None,
        usage: tuple[int, int] | None = None,
    ) -> None:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            chunk["usage"] = _usage(usage)
        await self.response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    async def done(self) -> web.StreamResponse:
        await self.response.write(b"data: [DONE]\n\n")
        await self.response.write_eof()
        return self.response


def _validate(body: Any) -> list[dict[str, Any]]:
    """Pydantic-style issues for a chat request, as Mistral's 422 lists them."""
    if not isinstance(body, dict):
        return [_issue("model_attributes_type", [], "Input should be an object", body)]
    issues = [
        _issue("extra_forbidden", [name], "Extra inputs are not permitted", body[name])
        for name in body
        if name not in CHAT_FIELDS
    ]
    for name in ("model", "messages"):
        if name not in body:
            issues.append(_issue("missing", [name], "Field required", body))
    messages = body.get("messages")
    if not isinstance(messages, list):
        return issues
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in MESSAGE_FIELDS:
            issues.append(_issue("union_tag_invalid", ["messages", i], "Invalid role", message))
            continue
        issues.extend(
            _issue(
                "extra_forbidden", ["messages", i, role, name], "Extra inputs are not permitted", v
            )
            for name, v in message.items()
            if name not in MESSAGE_FIELDS[role]
        )
        content = message.get("content")
        if isinstance(content, list):
            issues.extend(_content_issues(content, ["messages", i, role, "content"], role))
    return issues


def _content_issues(content: list[Any], loc: list[Any], role: str) -> list[dict[str, Any]]:
    """Issues with a list of content chunks: text everywhere, images in user messages."""
    issues = []
    for j, chunk in enumerate(content):
        kind = chunk.get("type") if isinstance(chunk, dict) else None
        where = [*loc, j]
        if kind == "text" and isinstance(chunk.get("text"), str):
            continue
        if kind == "image_url" and role == "user":
            value = chunk.get("image_url")
            url = value.get("url") if isinstance(value, dict) else value
            if not isinstance(url, str):
                issues.append(_issue("string_type", [*where, "image_url"], "Invalid URL", value))
            continue
        issues.append(_issue("union_tag_invalid", where, f"Invalid chunk type {kind!r}", chunk))
    return issues


def _image_urls(content: Any) -> list[str]:
    """The URLs of a (validated) message content's ``image_url`` chunks."""
    if not isinstance(content, list):
        return []
    urls = []
    for chunk in content:
        if chunk.get("type") == "image_url":
            value = chunk["image_url"]
            urls.append(value["url"] if isinstance(value, dict) else value)
    return urls


def _issue(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", *loc], "msg": msg, "input": value}


def _invalid(issues: list[dict[str, Any]]) -> web.Response:
    return _error(422, {"detail": issues}, "invalid_request_error")


def _error(
    status: int,
    message: Any,
    kind: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": code}
    return web.json_response(body, status=status, headers=headers)


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(reply: Reply, model: str, text: str) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` body."""
    body: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
    }
    if reply.usage is not None:
        body["usage"] = _usage(reply.usage)
    return body
