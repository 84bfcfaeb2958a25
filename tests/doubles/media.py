"""What the model API doubles share about images: a tiny real PNG to answer with, and a
record of each image a chat request carried, decoded back to its bytes.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass, field
from functools import cache

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@cache
def tiny_png(width: int = 4, height: int = 4) -> bytes:
    """A real, decodable RGB PNG (a small two-colour gradient), built with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00"  # filter type: none
        + b"".join(
            bytes((255 * x // max(width - 1, 1), 80, 255 * y // max(height - 1, 1)))
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class SeenImage:
    """One image a chat request carried, as the double received it.

    ``url`` is what was sent: a ``data:`` URL for the OpenAI-style APIs (an ``http`` one
    would be a leak: Telegram's file URLs hold the bot token), the bare base64 string in
    Ollama's ``images``. ``data`` is the decoded bytes, None when ``url`` held no base64
    data (a plain URL). ``mime`` is the data URL's media type (None for Ollama).
    """

    model: str
    role: str
    url: str = field(repr=False)
    data: bytes | None = field(default=None, repr=False)
    mime: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else 0


def decode_data_url(url: str) -> tuple[str, bytes] | None:
    """(media type, bytes) of a ``data:<mime>;base64,<data>`` URL; None for another URL.

    Raises ValueError for a data URL that is not valid base64 (the APIs answer 400).
    """
    if not url.startswith("data:"):
        return None
    header, comma, payload = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise ValueError("not a base64 data URL")
    return header[: -len(";base64")], decode_base64(payload)


def decode_base64(text: str) -> bytes:
    """Strict standard base64; ValueError when it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
