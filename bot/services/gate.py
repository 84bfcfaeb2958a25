"""The start gate: how many updates may be *starting* at once (reading Redis, admission,
building the request: the part that costs CPU), as opposed to how many answers may be
in flight (waiting on their model costs next to nothing).

An update takes a slot when it arrives and gives it back as soon as its request is on
its way to the model (:func:`started`), or when its handler ends. So a burst of new
updates queues at the gate, in arrival order, while thousands of answers already
streaming keep being served: their chunks never wait behind new updates' work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

_release: ContextVar[Callable[[], None] | None] = ContextVar("gate_release", default=None)


class StartGate:
    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot while starting; :func:`started` (in this task) gives it back early."""
        await self._slots.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._slots.release()

        token = _release.set(release)
        try:
            yield
        finally:
            _release.reset(token)
            release()


def started() -> None:
    """The current update's work is now waiting (on a model, or a timer): free its slot."""
    release = _release.get()
    if release is not None:
        release()
