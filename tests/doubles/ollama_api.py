"""A double of Ollama's native API, mounted at ``/api``; no key unless one is given.

``POST /api/chat`` streams NDJSON (``application/x-ndjson``) unless ``"stream": false``:
one ``{"model", "created_at", "message": {"role", "content"}, "done": false}`` line per
piece, then a ``"done": true`` line with ``done_reason`` and the token counts. An error
after the 200 is a line ``{"error": ...}`` that ends the stream (``Reply.error_after``).
Errors before it are ``{"error": ...}`` with a status; an unknown model is Ollama's 404.
``options.num_predict`` cuts the answer to that many pieces (``done_reason`` "length").
``GET /api/tags`` lists the pulled models. A message's ``images`` is a list of base64
strings (no ``data:`` prefix); each is recorded in ``images`` (a
:class:`~tests.doubles.media.SeenImage` whose ``url`` is the string as sent), and one
that is not base64 gets Ollama's 400.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply
from tests.doubles.media import SeenImage, decode_base64

DEFAULT_MODELS = ["llama3.2:latest", "qwen2.5:7b"]


class OllamaDouble(LLMDouble):
    def __init__(self, key: str | None = None) -> None:
        super().__init__(key)
        self.images: list[SeenImage] = []  # every image a chat request carried, in order
        self.app.router.add_post("/api/chat", self._chat)
        self.app.router.add_get("/api/tags", self._tags)

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return _error(401, "unauthorized")
        names = sorted(self.known_models) if self.known_models is not None else DEFAULT_MODELS
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-05-01T10:00:00.000000000Z",
                "size": 2019393189,
                "digest": "a80c4f17acd5",
                "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
            }
            for name in names
        ]
        return web.json_response({"models": models})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return _error(401, "unauthorized")
        payload: dict[str, Any] = await request.json()
        model = str(payload.get("model", ""))
        if not self.model_exists(model):
            return _error(404, f'model "{model}" not found, try pulling it first')
        for message in payload.get("messages", []):
            images = message.get("images") or []
            if not isinstance(images, list):
                return _error(400, "json: cannot unmarshal images into []ImageData")
            for image in images:
                try:
                    data = decode_base64(image) if isinstance(image, str) else None
                except ValueError:
                    data = None
                if data is None:
                    return _error(400, "illegal base64 data at input byte 0")
                self.images.append(SeenImage(model, str(message.get("role")), image, data))
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            return _error(reply.status, reply.error, headers)

        pieces = self.pieces(reply, self.answer_text(reply, payload.get("messages", [])))
        done_reason = "stop"
        options = payload.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if isinstance(limit, int) and 0 <= limit < len(pieces):
            pieces, done_reason = pieces[:limit], "length"
        if payload.get("stream", True):
            return await self._stream(request, model, reply, pieces, done_reason)
        if reply.malformed:
            return web.Response(text="Internal Server Error", content_type="text/plain")
        final = _final(model, reply, done_reason)
        final["message"]["content"] = "".join(pieces)
        return web.json_response(final)

    async def _stream(
        self, request: web.Request, model: str, reply: Reply, pieces: list[str], reason: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        async def send(line: dict[str, Any]) -> None:
            await response.write(json.dumps(line).encode() + b"\n")

        if reply.malformed:
            await response.write(b'{"model": "' + model.encode() + b'", "message": {\n')
            await response.write_eof()
            return response
        for index, piece in enumerate(pieces):
            if reply.error_after is not None and index >= reply.error_after:
                await send({"error": reply.error})
                await response.write_eof()
                return response
            if reply.cut_after is not None and index >= reply.cut_after:
                self.cut(request)
                return response
            if index:
                await self.pause(reply.chunk_delay)
            await send(
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
        await send(_final(model, reply, reason))
        await response.write_eof()
        return response


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _final(model: str, reply: Reply, reason: str) -> dict[str, Any]:
    line: dict[str, Any] = {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason,
        "done": True,
        "total_duration": 412000000,
        "load_duration": 21000000,
    }
    if reply.usage is not None:
        prompt, completion = reply.usage
        line |= {
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 35000000,
            "eval_count": completion,
            "eval_duration": 350000000,
        }
    return line


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
