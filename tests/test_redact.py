"""Secrets out of text and out of log lines: the Redactor and the RedactingFilter, on a
real ``logging.Logger`` whose handler writes to a buffer."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.redact import MASK, RedactingFilter, Redactor

TOKEN = "7000000001:AAF-secret-bot-token"
KEY = "sk-live-key-0123456789"


# --- Redactor ------------------------------------------------------------------------


def test_replaces_every_occurrence_of_every_secret() -> None:
    redact = Redactor([TOKEN, KEY])
    text = f"GET /bot{TOKEN}/getMe with {KEY}; again {KEY} and /bot{TOKEN}/"
    assert redact(text) == "GET /bot***/getMe with ***; again *** and /bot***/"


def test_text_without_secrets_is_unchanged() -> None:
    assert Redactor([TOKEN])("nothing to hide here") == "nothing to hide here"
    assert Redactor()("no secrets known at all") == "no secrets known at all"


def test_longest_secret_first_so_no_tail_of_it_is_left() -> None:
    short, long = "sk-abcdef", "sk-abcdef-ghijkl"  # one is the start of the other
    for order in ([short, long], [long, short]):
        redact = Redactor(order)
        assert redact(f"key={long}") == f"key={MASK}"
        assert redact(f"key={short}") == f"key={MASK}"


def test_longest_first_also_across_calls_to_add() -> None:
    redact = Redactor(["sk-abcdef"])
    redact.add("xx-sk-abcdef-yy")
    assert redact("a xx-sk-abcdef-yy b") == "a *** b"


def test_short_and_empty_secrets_are_ignored() -> None:
    """A 5-character "secret" would mask ordinary words all over the log."""
    redact = Redactor(["abc", "12345", "", None])
    redact.add(None, "", "pass")
    text = "abc 12345 pass password"
    assert redact(text) == text
    assert Redactor(["123456"])("id 123456") == "id ***"  # 6 is enough


def test_adding_a_secret_twice_is_harmless() -> None:
    redact = Redactor([KEY, KEY])
    redact.add(KEY)
    assert redact(f"{KEY}{KEY}") == "******"


# --- RedactingFilter on a real logger ----------------------------------------------


class Captured:
    def __init__(self, logger: logging.Logger, buffer: io.StringIO) -> None:
        self.logger = logger
        self.buffer = buffer

    @property
    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    """A logger of its own (not propagating) whose one handler has the filter."""
    logger = logging.getLogger(f"test_redact.{request.node.name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor([TOKEN, KEY])))
    logger.addHandler(handler)
    try:
        yield Captured(logger, buffer)
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_secret_in_the_format_arguments(captured: Captured) -> None:
    captured.logger.info("calling %s with key %s (%d)", f"/bot{TOKEN}/getMe", KEY, 3)
    assert captured.text.endswith("calling /bot***/getMe with key *** (3)\n")
    assert TOKEN not in captured.text and KEY not in captured.text


def test_secret_in_the_message_itself(captured: Captured) -> None:
    captured.logger.warning(f"the key is {KEY}")
    assert "the key is ***" in captured.text
    assert KEY not in captured.text


def test_secret_in_mapping_arguments(captured: Captured) -> None:
    captured.logger.info("%(url)s failed", {"url": f"https://x/bot{TOKEN}/"})
    assert "https://x/bot***/ failed" in captured.text
    assert TOKEN not in captured.text


def test_secret_in_an_exception_given_as_argument(captured: Captured) -> None:
    """As the bot logs a provider failure: ``log.warning("...: %s", exc)``."""
    error = RuntimeError(f"401 for key {KEY}")
    captured.logger.warning("local (local) failed: %s: %s", type(error).__name__, error)
    assert "failed: RuntimeError: 401 for key ***" in captured.text
    assert KEY not in captured.text


def test_messages_without_secrets_are_logged_as_usual(captured: Captured) -> None:
    captured.logger.info("chat %s: %d answer(s), %.1f s", 42, 2, 1.25)
    captured.logger.info("100% done")  # no args: a lone % is no format
    assert captured.text.splitlines() == [
        "INFO test_redact.test_messages_without_secrets_are_logged_as_usual: chat 42: 2 "
        "answer(s), 1.2 s",
        "INFO test_redact.test_messages_without_secrets_are_logged_as_usual: 100% done",
    ]


def test_traceback_is_scrubbed(captured: Captured) -> None:
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        captured.logger.exception("request to %s failed", "telegram")
    text = captured.text
    assert "request to telegram failed" in text
    assert "Traceback (most recent call last)" in text
    assert "ValueError: bad token ***" in text
    assert TOKEN not in text


def test_chained_traceback_and_exc_info_instance_are_scrubbed(captured: Captured) -> None:
    try:
        try:
            raise KeyError(KEY)
        except KeyError as inner:
            raise RuntimeError(f"lookup with {TOKEN} failed") from inner
    except RuntimeError as exc:
        captured.logger.error("boom", exc_info=exc)
    text = captured.text
    assert "The above exception was the direct cause" in text
    assert "KeyError: '***'" in text and "RuntimeError: lookup with *** failed" in text
    assert KEY not in text and TOKEN not in text


def test_every_handler_sees_the_scrubbed_record(captured: Captured) -> None:
    """The filter cleans the record itself: a second handler after it gets clean text."""
    second = io.StringIO()
    handler = logging.StreamHandler(second)
    captured.logger.addHandler(handler)
    try:
        try:
            raise OSError(f"no route for {KEY}")
        except OSError:
            captured.logger.warning("url %s", TOKEN, exc_info=True)
    finally:
        captured.logger.removeHandler(handler)
    assert KEY not in second.getvalue() and TOKEN not in second.getvalue()
    assert "url ***" in second.getvalue() and "OSError: no route for ***" in second.getvalue()


def test_a_malformed_log_call_does_not_raise_into_the_caller(captured: Captured) -> None:
    captured.logger.warning("%d items", "not a number")  # must not raise
    captured.logger.info("still logging %s", KEY)
    assert "still logging ***" in captured.text
