"""Decoding streamed events: orjson, and the standard library for what orjson refuses."""

from __future__ import annotations

import pytest

from providers.codec import loads


def test_events_decode_from_bytes_and_text() -> None:
    event = '{"choices":[{"delta":{"content":"héllo 👋"}}]}'
    expected = {"choices": [{"delta": {"content": "héllo 👋"}}]}
    assert loads(event) == expected
    assert loads(event.encode()) == expected


def test_half_an_emoji_escape_is_kept_for_the_bot_to_join() -> None:
    # a proxy split "\ud83d\udc4b" between two events: each half decodes on its own
    assert loads(b'{"t":"\\ud83d"}') == {"t": "\ud83d"}
    assert loads(b'{"t":"\\udc4b"}') == {"t": "\udc4b"}


@pytest.mark.parametrize("data", [b"not json", b'{"t": "\xff"}', b"", b'{"t":'])
def test_what_is_not_json_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        loads(data)
