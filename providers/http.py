"""What the httpx-based adapters share: a pooled client, error mapping, event streams."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx

from providers import aiohttp_transport
from providers.base import Provider
from providers.codec import loads
from providers.errors import (
    ProviderError,
    ProviderTimeoutError,
    UnavailableError,
    UnreachableError,
    error_for_status,
    parse_retry_after,
)


class HttpProvider(Provider):
    """A provider spoken to with httpx: JSON requests, line-based streamed answers."""

    @functools.cached_property
    def client(self) -> httpx.AsyncClient:
        """Made on first use. No cap on streams at once: thousands may wait on a slow
        model (a waiting stream is one idle socket); the bot bounds what costs CPU. It
        sends through aiohttp (providers/aiohttp_transport.py)."""
        config = self.config
        headers = {"Accept": "application/json", "User-Agent": "manymodels-bot"}
        if config.api_key:
            headers.update(self._auth_headers(config.api_key))
        return httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            transport=aiohttp_transport.for_httpx(httpx),
        )

    async def aclose(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            await client.aclose()

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key: ``Authorization: Bearer``, unless an API
        wants its own (Gemini's ``x-goog-api-key``)."""
        return {"Authorization": f"Bearer {api_key}"}

    def _error(self, status: int, body: str, headers: Mapping[str, str]) -> ProviderError:
        """Map a failed response; adapters override to read their own error bodies."""
        return error_for_status(
            status,
            body,
            retry_after=parse_retry_after(headers.get("retry-after")),
            provider=self.name,
        )

    def _transport_error(self, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.ConnectTimeout):
            return UnreachableError(f"{self.name}: no connection within the timeout")
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(f"{self.name}: timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return UnreachableError(f"{self.name}: cannot connect: {exc}")
        return UnavailableError(f"{self.name}: {type(exc).__name__}: {exc}")

    async def _events(
        self, path: str, payload: Mapping[str, Any], *, sse: bool = True
    ) -> AsyncGenerator[Any]:
        """POST ``payload`` and yield, as they arrive, the JSON of each server-sent
        event's data up to ``[DONE]`` (``sse``), or of each line of an NDJSON stream.

        One generator from the response's lines to the parsed events: every layer costs
        each of an answer's thousands of chunks."""
        try:
            async with self.client.stream("POST", path, json=payload) as response:
                if response.status_code >= 400:
                    body = (await response.aread()).decode("utf-8", "replace")
                    raise self._error(response.status_code, body, response.headers)
                async for line in response.aiter_lines():
                    if sse:
                        if not line.startswith("data:"):
                            continue  # comments (": keep-alive"), event names, ids, blanks
                        line = line[5:].strip()
                        if line == "[DONE]":
                            return
                    elif not line:
                        continue
                    try:
                        event = loads(line)
                    except ValueError:
                        raise self._malformed() from None
                    yield event
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    async def _model_names(self, path: str, list_key: str, name_key: str) -> list[str]:
        """The names in a GET listing such as ``{"data": [{"id": ...}, ...]}``."""
        data = await self._get_json(path)
        items = data.get(list_key) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise UnavailableError(f"{self.name}: unexpected model list from the API")
        return [
            m[name_key] for m in items if isinstance(m, dict) and isinstance(m.get(name_key), str)
        ]

    async def _post_json(
        self, path: str, payload: Mapping[str, Any], *, read_timeout: float | None = None
    ) -> Any:
        """POST ``payload`` and return the JSON answer (a call that is not streamed, such
        as an image); ``read_timeout`` overrides the client's."""
        options: dict[str, Any] = {}
        if read_timeout is not None:
            options["timeout"] = httpx.Timeout(read_timeout, connect=min(10.0, self.config.timeout))
        try:
            response = await self.client.post(path, json=payload, **options)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._error(response.status_code, response.text, response.headers)
        return self._json(response.text)

    async def _get_json(self, path: str) -> Any:
        try:
            response = await self.client.get(path)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._error(response.status_code, response.text, response.headers)
        return self._json(response.text)

    def _json(self, text: str) -> Any:
        try:
            return loads(text)
        except ValueError:
            raise self._malformed() from None

    def _malformed(self) -> UnavailableError:
        return UnavailableError(f"{self.name}: malformed JSON from the API")
