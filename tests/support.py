"""Helpers the end-to-end tests share: scripted model streams that count what was
taken, a user's credits left today, and the bold pieces of a text or rich message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tests.doubles.telegram import FakeUser
from tests.doubles.telegram_rich import flatten_text


class Script(list[str]):
    """The pieces a model double streams, counting how many it took to send; ``done`` is
    set when the double stops taking them (all sent, or its client went away)."""

    def __init__(self, pieces: list[str]) -> None:
        super().__init__(pieces)
        self.taken = 0
        self.done = False

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in list.__iter__(self):
                self.taken += 1
                yield piece
        finally:
            self.done = True

    @property
    def text(self) -> str:
        return "".join(list.__iter__(self))


def long_script(count: int = 40, word: str = "w") -> Script:
    return Script([f"{word}{i:02d} " for i in range(count)])


async def credits_left(user: FakeUser, daily: int, timeout: float = 10.0) -> int:
    """What /limits says is left of the overall allowance of ``daily`` credits."""
    await user.send("/limits")
    text = (await user.next_message(timeout=timeout))["text"]
    found = re.search(r"(\d+) of (\d+) credits left", text)
    assert found is not None and int(found.group(2)) == daily, text
    return int(found.group(1))


def bold_texts(message: dict[str, Any]) -> list[str]:
    """The bold pieces of a message as shown, in order: its bold entities, or for a rich
    message its bold rich texts."""
    if "rich_message" not in message:
        text = message["text"].encode("utf-16-le")
        return [
            text[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le")
            for e in message.get("entities", [])
            if e["type"] == "bold"
        ]
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "bold":
                found.append(flatten_text(node["text"]))
                return
            for value in node.values():
                walk(value)

    walk(message["rich_message"])
    return found
