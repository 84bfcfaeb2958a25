"""What a Retry button keeps in Redis: the request, a photo by its Telegram file id."""

from __future__ import annotations

from bot.services.generations import Photo, Retry


def test_a_text_request_round_trips() -> None:
    kept = Retry(-100123, "line one\nline two {with braces}")
    assert Retry.load(kept.dump()) == kept


def test_a_photo_is_kept_by_file_id_only() -> None:
    kept = Retry(42, "what is this?", Photo("AgACAgIAAxkBAAI", "image/jpeg"))
    raw = kept.dump()
    assert Retry.load(raw) == kept
    assert "AgACAgIAAxkBAAI" in raw and len(raw) < 200


def test_a_request_kept_by_the_earlier_format_still_retries() -> None:
    assert Retry.load("-100123\n{first line\nsecond") == Retry(-100123, "{first line\nsecond")
