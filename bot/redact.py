"""Keep secrets out of logs and messages: a logging filter and a string scrubber."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar

MASK = "***"


class Redactor:
    """Replaces every known secret (bot token, API keys, passwords) in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= 6 and secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class RedactingFilter(logging.Filter):
    """Formats each record's message once and scrubs it (and any traceback) of secrets."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not fail the code that logged
            message = f"{record.msg!s} (arguments: {record.args!r})"
        clean = self.redactor(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        return True


# The update being handled, set by the dispatcher's outer middleware, so that every log
# line (a provider failure, a Redis error) names the update it belongs to.
current_update: ContextVar[str] = ContextVar("current_update", default="-")


class UpdateField(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.update = current_update.get()
        return True


def install(redactor: Redactor, level: str) -> None:
    """Configure root logging: the update id on every line, secrets scrubbed."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [update %(update)s]: %(message)s",
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(UpdateField())
        handler.addFilter(RedactingFilter(redactor))
