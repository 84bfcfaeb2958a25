"""One router per feature; ``get_routers()`` builds them (fresh for each dispatcher) in
the order they must match."""

from __future__ import annotations

from aiogram import Router


def get_routers() -> list[Router]:
    from bot.handlers import (
        admin,
        arena,
        chat,
        compare,
        errors,
        language,
        limits,
        media,
        model,
        other,
        payments,
        start,
    )

    # `chat` first (after the one filter that sends a reply to /arena's question prompt
    # to the arena): most updates are chat messages, and its filter takes no command, so
    # they need not pass every command's filter first. `other` last: it answers whatever
    # the feature routers did not take.
    routers = (
        errors,
        payments,
        arena,
        chat,
        start,
        admin,
        model,
        language,
        compare,
        limits,
        media,
        other,
    )
    return [m.router() for m in routers]
