"""A double of Meta's Llama API (native format), mounted at ``/v1``.

``POST /v1/chat/completions`` answers a JSON completion or, with ``"stream": true``,
server-sent events ``data: {"id": ..., "event": {...}}``: a ``start`` event, one
``progress`` event per piece, a ``complete`` event with the stop reason and a ``metrics``
event with the token counts; the stream then simply ends (set ``send_done`` to append a
``[DONE]`` line as OpenAI-style servers do). ``GET /v1/models`` lists the models.
Errors are problem-details bodies ``{"title", "detail", "status"}``; a wrong key is a 401.
A user message's ``content`` may be a list of ``{"type": "text", "text"}`` and
``{"type": "image_url", "image_url": {"url"}}`` items; each image is recorded in
``images`` (a :class:`~tests.doubles.media.SeenImage`); a malformed item, an image in
another role or a data URL that is not base64 is a 400.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply
from tests.doubles.media import SeenImage, decode_data_url

DEFAULT_MODELS = ["Llama-3.3-70B-Instruct", "Llama-4-Maverick-17B-128E-Instruct-FP8"]


class LlamaDouble(LLMDouble):
    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__(key)
        self.send_done = False
        self.images: list[SeenImage] = []  # every image a chat request carried, in order
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return _problem(401, "Invalid API key")
        names = sorted(self.known_models) if self.known_models is not None else DEFAULT_MODELS
        data = [
            {"id": n, "object": "model", "created": 1745000000, "owned_by": "Meta"} for n in names
        ]
        return web.json_response({"data": data, "object": "list"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return _problem(401, "Invalid API key")
        payload: dict[str, Any] = await request.json()
        model = str(payload.get("model", ""))
        if not self.model_exists(model):
            return _problem(404, f"Model {model} not found")
        invalid = self._record_images(model, payload.get("messages", []))
        if invalid is not None:
            return _problem(400, invalid)
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            return _problem(reply.status, reply.error, headers)

        pieces = self.pieces(reply, self.answer_text(reply, payload.get("messages", [])))
        stop_reason = "stop"
        limit = payload.get("max_completion_tokens")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, stop_reason = pieces[:limit], "length"
        if payload.get("stream"):
            return await self._stream(request, reply, pieces, stop_reason)
        if reply.malformed:
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        return web.json_response(
            {
                "id": _id(),
                "completion_message": {
                    "role": "assistant",
                    "content": {"type": "text", "text": "".join(pieces)},
                    "stop_reason": stop_reason,
                },
                "metrics": _metrics(reply),
            }
        )

    def _record_images(self, model: str, messages: list[Any]) -> str | None:
        """Record the messages' images; what is wrong with a malformed content item."""
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            role = str(message.get("role"))
            for j, item in enumerate(content):
                where = f"messages.{i}.content.{j}"
                kind = item.get("type") if isinstance(item, dict) else None
                if kind == "text" and isinstance(item.get("text"), str):
                    continue
                if kind != "image_url":
                    return f"{where}: unsupported content type {kind!r}"
                if role != "user":
                    return f"{where}: images are only supported in user messages"
                value = item.get("image_url")
                url = value.get("url") if isinstance(value, dict) else None
                if not isinstance(url, str):
                    return f"{where}.image_url: expected an object with a url"
                try:
                    decoded = decode_data_url(url)
                except ValueError:
                    return f"{where}.image_url.url: invalid base64 image data"
                mime, data = decoded if decoded is not None else (None, None)
                self.images.append(SeenImage(model, role, url, data, mime))
        return None

    async def _stream(
        self, request: web.Request, reply: Reply, pieces: list[str], stop_reason: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if reply.malformed:
            await response.write(b'data: {"event": {"event_type": "start", "delta": \n\n')
            await response.write_eof()
            return response
        stream_id = _id()

        async def send(event: dict[str, Any]) -> None:
            data = json.dumps({"id": stream_id, "event": event})
            await response.write(f"data: {data}\n\n".encode())

        await send({"event_type": "start", "delta": {"type": "text", "text": ""}})
        for index, piece in enumerate(pieces):
            if reply.cut_after is not None and index >= reply.cut_after:
                self.cut(request)
                return response
            if index:
                await self.pause(reply.chunk_delay)
            await send({"event_type": "progress", "delta": {"type": "text", "text": piece}})
        await send(
            {
                "event_type": "complete",
                "delta": {"type": "text", "text": ""},
                "stop_reason": stop_reason,
            }
        )
        if reply.usage is not None:
            await send(
                {
                    "event_type": "metrics",
                    "delta": {"type": "text", "text": ""},
                    "metrics": _metrics(reply),
                }
            )
        if self.send_done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _id() -> str:
    return f"AHJ-{uuid.uuid4().hex[:16]}"


def _metrics(reply: Reply) -> list[dict[str, Any]]:
    if reply.usage is None:
        return []
    prompt, completion = reply.usage
    return [
        {"metric": "num_completion_tokens", "value": completion, "unit": "tokens"},
        {"metric": "num_prompt_tokens", "value": prompt, "unit": "tokens"},
        {"metric": "num_total_tokens", "value": prompt + completion, "unit": "tokens"},
    ]


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"title": HTTPStatus(status).phrase, "detail": detail, "status": status}
    return web.json_response(body, status=status, headers=headers)
