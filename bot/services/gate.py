"""The start gate: how many updates may be *starting* at once (reading Redis, admission,
building the request: the part that costs CPU), as opposed to how many answers may be
in flight (waiting on their model costs next to nothing).

An update takes a slot when it arrives and gives it back as soon as its request is on
its way to the model (:func:`started`), or when its handler ends. So a burst of new
updates queues at the gate, in arrival order, while thousands of answers already
streaming keep being served: their chunks never wait behind new updates' work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar

_release: ContextVar[Callable[[], None] | None] = ContextVar("gate_release", default=None)


class StartGate:
    def __init__(self, slots: int) -> None:
        self._slots = asyncio.Semaphore(slots)

    def slot(self) -> _Slot:
        """Hold a slot while starting (``async with``); :func:`started` (in this task)
        gives it back early."""
        return _Slot(self._slots)


class _Slot:
    """One update's slot: a plain async context manager (one per update, so no
    generator-based one), given back once, by :func:`started` or at the end."""

    __slots__ = ("_held", "_slots", "_token")

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        self._held = True
        self._token = _release.set(self.release)

    async def __aexit__(self, *exc: object) -> None:
        _release.reset(self._token)
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


def started() -> None:
    """The current update's work is now waiting (on a model, or a timer): free its slot."""
    release = _release.get()
    if release is not None:
        release()
