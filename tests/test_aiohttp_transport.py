"""providers.aiohttp_transport: httpx (and httpx2) clients whose wire is aiohttp, against
real loopback servers: errors as httpx names them, timeouts, bodies, keep-alive, TLS,
proxies."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest
from aiohttp import web

from providers import aiohttp_transport
from tests.doubles.base import DoubleServer
from tests.redis_server import free_port
from tests.support import make_certificates


@pytest.fixture(params=[httpx, httpx2], ids=["httpx", "httpx2"])
def hx(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


class Server(DoubleServer):
    """A few answers a transport must read right, and the connections they came on."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: set[Any] = set()
        self.app.router.add_get("/text", self._text)
        self.app.router.add_post("/echo", self._echo)
        self.app.router.add_get("/gzip", self._gzip)
        self.app.router.add_get("/slow", self._slow)
        self.app.router.add_get("/cut", self._cut)
        self.app.router.add_get("/stream", self._stream)

    async def _text(self, request: web.Request) -> web.Response:
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(text="plain", headers={"X-Seen": request.headers.get("X-Key", "")})

    async def _echo(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type=request.content_type)

    async def _gzip(self, request: web.Request) -> web.Response:
        body = gzip.compress(b"zipped " * 100)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"only part of it")
        assert request.transport is not None
        request.transport.close()
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for piece in (b"one ", b"two ", b"three"):
            await response.write(piece)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server() as running:
        yield running


def client(hx: Any, base_url: str, **options: Any) -> Any:
    transport = aiohttp_transport.for_httpx(hx)
    return hx.AsyncClient(base_url=base_url, transport=transport, **options)


async def test_requests_and_answers_go_through_whole(hx: Any, server: Server) -> None:
    async with client(hx, server.url, headers={"X-Key": "k1"}) as http:
        plain = await http.get("/text")
        echoed = await http.post("/echo", json={"q": "é" * 3})
        zipped = await http.get("/gzip")
        pieces = []
        async with http.stream("GET", "/stream") as streamed:
            async for piece in streamed.aiter_bytes():
                pieces.append(piece)
        again = await http.get("/text")
    assert (plain.status_code, plain.text, plain.headers["X-Seen"]) == (200, "plain", "k1")
    assert echoed.json() == {"q": "ééé"}
    assert zipped.text == "zipped " * 100  # decoded once, by httpx
    assert b"".join(pieces) == b"one two three" and len(pieces) >= 2  # as it arrived
    assert again.text == "plain"
    assert len(server.peers) == 1  # the connection was kept alive and used again


async def test_a_refused_connection_is_a_connect_error(hx: Any) -> None:
    async with client(hx, f"http://127.0.0.1:{free_port()}") as http:
        with pytest.raises(hx.ConnectError):
            await http.get("/text")


async def test_a_silent_server_is_a_read_timeout(hx: Any, server: Server) -> None:
    async with client(hx, server.url, timeout=hx.Timeout(0.3, connect=2.0)) as http:
        with pytest.raises(hx.ReadTimeout):
            await http.get("/slow")


async def test_a_body_cut_short_is_a_protocol_error(hx: Any, server: Server) -> None:
    async with client(hx, server.url) as http:
        with pytest.raises(hx.RemoteProtocolError):
            await http.get("/cut")


async def test_a_proxy_named_in_the_environment_is_used(
    hx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx sends through HTTP(S)_PROXY; a transport of its own must still do so."""
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.Response(text="via the proxy")

    proxy = DoubleServer()
    proxy.app.router.add_route("*", "/{tail:.*}", forward)
    async with proxy:
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        target = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        async with client(hx, target) as http:
            answer = await http.get("/v1/models")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with Server() as direct, client(hx, direct.url) as http:
            plain = await http.get("/text")
    assert answer.text == "via the proxy"
    assert seen == [f"{target}/v1/models"]
    assert plain.text == "plain"  # NO_PROXY: straight to the server


async def test_https_is_verified(hx: Any, tmp_path: Path) -> None:
    """A server whose certificate the client's context trusts answers; one it does not
    trust is refused (verification is never skipped)."""
    files = make_certificates(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(files.cert, files.key)
    server = Server()
    runner = web.AppRunner(server.app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
    await site.start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        trusting = hx.AsyncClient(
            base_url=url,
            transport=aiohttp_transport.for_httpx(
                hx, ssl.create_default_context(cafile=str(files.ca))
            ),
        )
        async with trusting:
            assert (await trusting.get("/text")).text == "plain"
        async with client(hx, url) as default:  # the system's store: not our test CA
            with pytest.raises(hx.ConnectError):
                await default.get("/text")
    finally:
        await runner.cleanup()
