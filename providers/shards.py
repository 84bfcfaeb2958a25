"""One provider's requests spread over several HTTP clients, a bounded number on each.

httpx's connection pool looks at every connection it holds each time a request starts or
ends (to expire idle ones and hand out free ones), so one pool carrying n streams at
once costs O(n) per request and O(n²) in all: with 2,000 slow answers streaming from
one provider, that scan alone took more CPU than everything else the bot did. Here each
client carries at most ``per_client`` requests at once; a request goes to the first
client with room (so a quiet bot uses one, and its kept-alive connections are reused),
and a new client is made only when every one is full. They share one TLS context: loading
the certificate store costs about 30 ms of CPU and a few MB each time.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

import httpx

C = TypeVar("C")

PER_CLIENT = 48  # requests at once on one client


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every provider's clients share (httpx's defaults: certifi's
    store, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured)."""
    return httpx.create_ssl_context()


class Shards(Generic[C]):
    def __init__(
        self,
        make: Callable[[], C],
        close: Callable[[C], Awaitable[None]],
        per_client: int = PER_CLIENT,
    ) -> None:
        self._make = make
        self._close = close
        self.per_client = per_client
        self._clients: list[C] = []
        self._loads: list[int] = []  # requests under way on each client

    def __len__(self) -> int:
        """How many clients were made."""
        return len(self._clients)

    @property
    def loads(self) -> list[int]:
        return list(self._loads)

    @contextlib.contextmanager
    def use(self) -> Iterator[C]:
        """A client for one request, held until the request (a whole stream) is over."""
        index = next((i for i, load in enumerate(self._loads) if load < self.per_client), None)
        if index is None:
            index = len(self._clients)
            self._clients.append(self._make())
            self._loads.append(0)
        self._loads[index] += 1
        client = self._clients[index]
        try:
            yield client
        finally:
            # unless the provider was closed meanwhile (a stream finalised after it)
            if index < len(self._clients) and self._clients[index] is client:
                self._loads[index] -= 1

    async def aclose(self) -> None:
        clients, self._clients, self._loads = self._clients, [], []
        for client in clients:
            await self._close(client)
