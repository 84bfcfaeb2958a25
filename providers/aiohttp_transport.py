"""An httpx transport that sends requests with aiohttp.

httpx's own transport (httpcore on anyio) spends most of a streamed answer's CPU on the
wire: every read of a chunk enters a timeout scope and pauses and resumes the socket's
reader (two epoll calls), and every request builds and parses its HTTP in Python. aiohttp
parses HTTP in C and hands a streamed body over as it arrives. Here httpx stays the
client every adapter and the openai SDK speak to (URLs, headers, auth, timeouts,
decoding, the SDK's retries and errors), and only the wire is aiohttp's: a slow stream
(20 chunks, one a read) costs about a third less CPU (bench/README.md, bench.streams).

The transport is the documented place to swap httpx's wire (``transport=``); the openai
SDK offers the same idea (``DefaultAioHttpClient``), whose vendored transport reports a
refused connection as a connect *timeout*. The one here maps aiohttp's errors onto
httpx's precisely, honours httpx's per-request timeouts (connect, read, pool), and sends
through a proxy named by ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` (``NO_PROXY``
honoured), as httpx would. The environment is read once, when the transport is made (as
httpx reads it when a client is made): aiohttp's own ``trust_env`` would look up the
proxy and ``~/.netrc`` in a worker thread on every request.

``for_httpx(module)`` makes one for either httpx (the native adapters) or
httpx2 (the openai SDK): the two have the same transport interface.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import urllib.request
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import aiohttp
import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every provider's client shares (httpx's defaults: certifi's store,
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured): loading a store costs about 30 ms."""
    return httpx.create_ssl_context()


KEEPALIVE = 5.0  # seconds an idle connection is kept (httpx's keepalive_expiry)


def _error(hx: Any, exc: BaseException) -> Exception:
    """httpx's exception for one of aiohttp's (and for an OSError or timeout under it)."""
    if isinstance(exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError)):
        kind = hx.ProxyError
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = hx.ConnectTimeout  # no connection (or none free) within the timeout
    elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        kind = hx.ReadTimeout  # the headers, or the next part of the body, did not come
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = hx.ConnectError  # refused, unknown host, TLS handshake failed
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        kind = hx.UnsupportedProtocol
    elif isinstance(
        exc,
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
    ):
        kind = hx.RemoteProtocolError  # closed before the response or its body's end; not HTTP
    else:
        kind = hx.ReadError  # reset, broken pipe
    error: Exception = kind(str(exc) or type(exc).__name__)
    return error


_RAISED = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class _Body:
    """A response body as it arrives; closing it gives its connection back (kept alive
    once the body was read to its end, closed otherwise)."""

    def __init__(self, hx: Any, response: aiohttp.ClientResponse) -> None:
        self._hx = hx
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except _RAISED as exc:
            raise _error(self._hx, exc) from exc

    async def aclose(self) -> None:
        self._response.release()


class _Transport:
    """One aiohttp session (made on the first request, in its event loop)."""

    def __init__(self, hx: Any, body_class: type[Any], ssl_context: ssl.SSLContext) -> None:
        self._hx = hx
        self._body_class = body_class
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_for: dict[tuple[str, str], str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE, ssl=self._ssl),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                auto_decompress=False,  # httpx decodes by Content-Encoding
            )
        return self._session

    def _proxy(self, scheme: str, host: str) -> str | None:
        """The proxy the environment names for this scheme and host, if any."""
        key = (scheme, host)
        if key not in self._proxy_for:
            proxy = self._proxies.get(scheme) or self._proxies.get("all")
            # NO_PROXY from the same reading (the function is urllib's, undocumented)
            bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
            if proxy and bypass(host, self._proxies):
                proxy = None
            self._proxy_for[key] = proxy
        return self._proxy_for[key]

    async def handle_async_request(self, request: Any) -> Any:
        hx = self._hx
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,  # httpx follows them, if asked
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),  # waiting for a free connection
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
                proxy=self._proxy(request.url.scheme, request.url.host),
            )
        except _RAISED as exc:
            raise _error(hx, exc) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return hx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=self._body_class(hx, response),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


@functools.cache
def _classes(hx: ModuleType) -> tuple[type[Any], type[Any]]:
    """The transport and body classes for one httpx module: each must be that module's
    own kind (httpx checks that a response's stream is one of its ``AsyncByteStream``)."""
    body = type("AiohttpBody", (_Body, hx.AsyncByteStream), {})
    transport = type("AiohttpTransport", (_Transport, hx.AsyncBaseTransport), {})
    return transport, body


def for_httpx(hx: ModuleType, ssl_context: ssl.SSLContext | None = None) -> Any:
    """A transport for ``hx`` (the ``httpx`` or ``httpx2`` module) sending with aiohttp;
    its TLS context the one every provider shares unless ``ssl_context`` is given."""
    transport, body = _classes(hx)
    return transport(hx, body, ssl_context or tls_context())
