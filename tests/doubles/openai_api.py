"""A fake OpenAI Chat Completions API (and so of every compatible API).

Routes, mounted under ``/v1`` (so a provider's ``base_url`` is ``{double.url}/v1``):
``POST /v1/chat/completions`` (SSE ``chat.completion.chunk`` stream, or one
``chat.completion`` JSON when ``stream`` is false) and ``GET /v1/models``.

Errors use OpenAI's body shape ``{"error": {"message", "type", "param", "code"}}``: 401
for a wrong or missing Bearer key, 404 ``model_not_found`` for a model outside
``known_models`` (when set), 400 ``context_length_exceeded`` when the messages exceed
``context_limit`` (in tokens, counted as four characters each; the wording is
``context_message``), and whatever status a :class:`Reply` scripts (with a Retry-After
header when ``retry_after`` is set).

A streamed answer sends the role in its first delta, one delta per piece, the finish
reason (``length`` when ``max_completion_tokens`` cuts the pieces), a usage-only chunk
(empty ``choices``) when ``stream_options.include_usage`` asks for it, then ``[DONE]``.
``Reply.cut_after`` drops the connection, ``Reply.error_after`` sends an in-stream
``{"error": ...}`` event (its ``code`` is ``stream_error_code``), ``Reply.malformed``
sends data that is not JSON, ``Reply.hang`` never answers.

Images in chat: a user message's ``content`` may be a list of ``{"type": "text"}`` and
``{"type": "image_url", "image_url": {"url": ...}}`` parts. Each image is recorded in
``images`` (a :class:`~tests.doubles.media.SeenImage`, its ``data:`` URL decoded); an
``image_url`` that is not an object, an image outside a user message, or a data URL
that is not base64 gets OpenAI's 400.

``POST /v1/images/generations`` answers ``{"created", "data": [{"b64_json"}]}`` holding
:func:`~tests.doubles.media.tiny_png` (a real PNG). Like the real API, ``gpt-image``
models refuse ``response_format`` (400 ``unknown_parameter``), and other models answer a
``url`` (served by the double at ``/generated/...``) unless asked for ``b64_json``.
``POST /v1/audio/transcriptions`` takes multipart ``file`` and ``model``, records an
:class:`Upload` in ``uploads`` and answers ``{"text": "transcript of <N> bytes: <the
upload as text>"}`` (the text part only when the upload is UTF-8), or ``Reply.text``
when set. Both use the same auth, ``known_models`` (404) and scripted :class:`Reply`
(``status``/``retry_after``, ``hang``, ``first_delay``, ``malformed``) as chat.

``POST /v1/images/edits`` takes multipart ``model``, ``prompt`` and ``image`` (or
``image[]``, several), records each upload in ``edits`` and answers like generations.
A non-streamed chat request with ``modalities`` holding ``"image"`` (image models behind
gateways such as OpenRouter) answers a message whose ``images`` hold one ``image_url``
with a ``data:`` URL of the tiny PNG, unless ``chat_draws`` is False (words only).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply, _content_text
from tests.doubles.media import SeenImage, decode_data_url, tiny_png

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {429: "rate_limit_exceeded"}


@dataclass
class Upload:
    """One ``/v1/audio/transcriptions`` request: its form fields and the uploaded file."""

    model: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)
    fields: dict[str, str] = field(default_factory=dict)


class OpenAIDouble(LLMDouble):
    """Speaks OpenAI's wire format on a loopback port; see the module docstring."""

    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__(key)
        self.context_limit: int | None = None  # tokens (4 characters each); None: no limit
        # The 400 message over context_limit; compatible servers word it differently.
        self.context_message = (
            "This model's maximum context length is {limit} tokens. However, your messages "
            "resulted in {tokens} tokens. Please reduce the length of the messages."
        )
        # The "code" of Reply.error_after's in-stream error event (OpenRouter: a status).
        self.stream_error_code: str | int | None = None
        self.images: list[SeenImage] = []  # every image a chat request carried, in order
        self.uploads: list[Upload] = []  # every audio file sent for transcription
        self.edits: list[Upload] = []  # every image sent to images/edits
        self.chat_draws = True  # chat requests with image modalities get a picture
        self._generated: dict[str, bytes] = {}  # images served by URL (response_format=url)
        self._ids = itertools.count(1)
        self._handlers: set[asyncio.Task[Any]] = set()
        self.app.router.add_post("/v1/chat/completions", self._tracked(self._answer))
        self.app.router.add_post("/v1/images/generations", self._tracked(self._generate))
        self.app.router.add_post("/v1/images/edits", self._tracked(self._edit))
        self.app.router.add_post("/v1/audio/transcriptions", self._tracked(self._transcribe))
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/generated/{name}", self._generated_image)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def stop(self) -> None:
        """Stop, first ending handlers still hanging or stalling (no shutdown wait)."""
        for task in self._handlers:
            task.cancel()
        await super().stop()

    # -- routes --------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        names = sorted(self.known_models) if self.known_models is not None else ["double-model"]
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "double"}
            for name in names
        ]
        return web.json_response({"object": "list", "data": data})

    def _tracked(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The handler, cancelled by stop() while it hangs or stalls."""

        async def run(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                return await handler(request)
            finally:
                self._handlers.discard(task)

        return run

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        model = str(payload.get("model", ""))
        if not self.model_exists(model):
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        messages: list[dict[str, Any]] = payload.get("messages") or []
        invalid = self._record_images(model, messages)
        if invalid is not None:
            return invalid
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            return _error(reply.status, reply.error, retry_after=reply.retry_after)
        tokens = sum(len(_content_text(m.get("content"))) for m in messages) // 4
        if self.context_limit is not None and tokens > self.context_limit:
            return _error(
                400,
                self.context_message.format(limit=self.context_limit, tokens=tokens),
                param="messages",
                code="context_length_exceeded",
            )
        pieces = self.pieces(reply, self.answer_text(reply, messages))
        finish = "stop"
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        completion_id = f"chatcmpl-double{next(self._ids)}"
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request, reply, model, completion_id, pieces, finish, include_usage
            )
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(pieces),
            "refusal": None,
        }
        if "image" in (payload.get("modalities") or []):
            if self.chat_draws:
                url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
                message["content"] = "Here is your picture."
                message["images"] = [{"type": "image_url", "image_url": {"url": url}}]
            else:
                message["content"] = "I can't draw that."
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(reply),
                "system_fingerprint": None,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        reply: Reply,
        model: str,
        completion_id: str,
        pieces: list[str],
        finish: str,
        include_usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        created = int(time.time())

        async def send(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {text}\n\n".encode())

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            event: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:
                event["usage"] = usage
            return event

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        if reply.malformed:
            await send('{"id": "chatcmpl-broken", "choices": [{"delta": {"content": "hel')
            await send("[DONE]")
            return response
        await send(chunk([choice({"role": "assistant", "content": "", "refusal": None})]))
        for thought in reply.reasoning or []:  # DeepSeek's and vLLM's reasoning deltas
            await send(chunk([choice({"reasoning_content": thought})]))
            await self.pause(reply.chunk_delay)
        for sent, piece in enumerate(pieces):
            if reply.cut_after is not None and sent >= reply.cut_after:
                await asyncio.sleep(0.05)  # let the pieces already written reach the client
                self.cut(request)
                return response
            if reply.error_after is not None and sent >= reply.error_after:
                error = _error_body(500, reply.error)
                error["code"] = self.stream_error_code
                await send({"error": error})
                return response
            if sent:
                await self.pause(reply.chunk_delay)
            await send(chunk([choice({"content": piece})]))
        await send(chunk([choice({}, finish)]))
        if include_usage and reply.usage is not None:
            await send(chunk([], _usage(reply)))
        await send("[DONE]")
        await response.write_eof()
        return response

    def _record_images(self, model: str, messages: list[Any]) -> web.Response | None:
        """Record the image parts of the messages; OpenAI's 400 for a malformed one."""
        for i, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            role = str(message.get("role"))
            for j, part in enumerate(content):
                where = f"messages[{i}].content[{j}]"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    continue
                if kind != "image_url":
                    return _error(400, f"Invalid value for '{where}'.", code="invalid_value")
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else None
                if not isinstance(url, str):
                    return _error(
                        400,
                        f"Invalid type for '{where}.image_url': expected an object with a "
                        "string 'url'.",
                        code="invalid_type",
                    )
                if role != "user":
                    return _error(
                        400,
                        f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages "
                        f"with role 'user', but this message with role '{role}' contains an "
                        "image URL.",
                        code="invalid_value",
                    )
                try:
                    decoded = decode_data_url(url)
                except ValueError:
                    return _error(
                        400,
                        "You uploaded an unsupported image. Please make sure your image is valid.",
                        code="invalid_image_format",
                    )
                mime, data = decoded if decoded is not None else (None, None)
                self.images.append(SeenImage(model, role, url, data, mime))
        return None

    async def _scripted(self, model: str) -> tuple[Reply, web.Response | None]:
        """The reply for ``model`` after its scripted wait, and its error response if any."""
        if not self.model_exists(model):
            return self.default, _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            return reply, _error(reply.status, reply.error, retry_after=reply.retry_after)
        return reply, None

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        prompt = payload.get("prompt") if isinstance(payload, dict) else None
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "Missing required parameter: 'prompt'.", param="prompt")
        model = str(payload.get("model") or "dall-e-2")
        fmt = payload.get("response_format")
        if "gpt-image" in model and fmt is not None:
            return _error(
                400,
                "Unknown parameter: 'response_format'.",
                param="response_format",
                code="unknown_parameter",
            )
        if fmt not in (None, "url", "b64_json"):
            return _error(400, f"Invalid value: '{fmt}'.", param="response_format")
        reply, failed = await self._scripted(model)
        if failed is not None:
            return failed
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        image = tiny_png()
        item: dict[str, Any]
        if "gpt-image" in model or fmt == "b64_json":
            item = {"b64_json": base64.b64encode(image).decode()}
        else:
            name = f"img-double{next(self._ids)}.png"
            self._generated[name] = image
            item = {"url": f"{self.url}/generated/{name}"}
        if model.startswith("dall-e-3"):
            item["revised_prompt"] = prompt
        body: dict[str, Any] = {"created": int(time.time()), "data": [item]}
        if "gpt-image" in model:
            body |= {"background": "opaque", "output_format": "png", "size": "1024x1024"}
            if reply.usage is not None:
                prompt_tokens, image_tokens = reply.usage
                body["usage"] = {
                    "input_tokens": prompt_tokens,
                    "output_tokens": image_tokens,
                    "total_tokens": prompt_tokens + image_tokens,
                }
        return web.json_response(body)

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        if request.content_type != "multipart/form-data":
            return _error(400, "Invalid Content-Type header, expected multipart/form-data.")
        parts = _multipart_all(request.headers["Content-Type"], await request.read())
        fields = {n: _text(p) for n, p in parts if p.get_filename() is None}
        files = [(n, p) for n, p in parts if p.get_filename() is not None]
        model = fields.get("model", "dall-e-2")
        if not fields.get("prompt"):
            return _error(400, "Missing required parameter: 'prompt'.", param="prompt")
        if not files or any(n not in ("image", "image[]") for n, _ in files):
            return _error(400, "Missing required parameter: 'image'.", param="image")
        if "gpt-image" in model and "response_format" in fields:
            return _error(400, "Unknown parameter: 'response_format'.", code="unknown_parameter")
        for _, part in files:
            data = part.get_payload(decode=True)
            self.edits.append(
                Upload(
                    model=model,
                    filename=part.get_filename() or "",
                    content_type=part.get_content_type(),
                    data=data if isinstance(data, bytes) else b"",
                    fields=fields,
                )
            )
        reply, failed = await self._scripted(model)
        if failed is not None:
            return failed
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        item = {"b64_json": base64.b64encode(tiny_png()).decode()}
        return web.json_response({"created": int(time.time()), "data": [item]})

    async def _generated_image(self, request: web.Request) -> web.StreamResponse:
        image = self._generated.get(request.match_info["name"])
        if image is None:
            raise web.HTTPNotFound()
        return web.Response(body=image, content_type="image/png")

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        if request.content_type != "multipart/form-data":
            return _error(400, "Invalid Content-Type header, expected multipart/form-data.")
        form = _multipart(request.headers["Content-Type"], await request.read())
        fields = {name: _text(part) for name, part in form.items() if part.get_filename() is None}
        file = form.get("file")
        if file is None or file.get_filename() is None:
            return _error(400, "Missing required parameter: 'file'.", param="file")
        model = fields.get("model", "")
        if not model:
            return _error(400, "you must provide a model parameter", param="model")
        data = file.get_payload(decode=True)
        upload = Upload(
            model=model,
            filename=file.get_filename() or "",
            content_type=file.get_content_type(),
            data=data if isinstance(data, bytes) else b"",
            fields=fields,
        )
        self.uploads.append(upload)
        reply, failed = await self._scripted(model)
        if failed is not None:
            return failed
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        text = reply.text if reply.text is not None else _transcript(upload.data)
        fmt = fields.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        body: dict[str, Any] = {"text": text}
        if fmt == "verbose_json":
            body |= {"task": "transcribe", "language": "english", "duration": 1.0}
        body["usage"] = {"type": "duration", "seconds": 1}
        return web.json_response(body)

    def _unauthorized(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        if not header:
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return _error(
            401,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "type": _ERROR_TYPES.get(status, "server_error"),
        "param": param,
        "code": code if code is not None else _ERROR_CODES.get(status),
    }


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return web.json_response(
        {"error": _error_body(status, message, param=param, code=code)},
        status=status,
        headers=headers,
    )


def _usage(reply: Reply) -> dict[str, int] | None:
    if reply.usage is None:
        return None
    prompt, completion = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _multipart(content_type: str, body: bytes) -> dict[str, EmailMessage]:
    """A multipart/form-data body's parts by field name."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    parts: dict[str, EmailMessage] = {}
    if not isinstance(message, EmailMessage):
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(part, EmailMessage):
            parts[name] = part
    return parts


def _multipart_all(content_type: str, body: bytes) -> list[tuple[str, EmailMessage]]:
    """Every part of a multipart/form-data body, with its field name, in order (a field
    such as ``image[]`` may come several times)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    parts: list[tuple[str, EmailMessage]] = []
    if not isinstance(message, EmailMessage):
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and isinstance(part, EmailMessage):
            parts.append((name, part))
    return parts


def _text(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _transcript(audio: bytes) -> str:
    """What the double "hears" in an upload: its size, and its bytes when they are text."""
    try:
        words = audio.decode("utf-8")
    except UnicodeDecodeError:
        return f"transcript of {len(audio)} bytes"
    return f"transcript of {len(audio)} bytes: {words[:200]}"
