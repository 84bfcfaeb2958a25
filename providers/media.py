"""Images on chat messages, as the adapters put them on the wire: base64 data, never a URL.

A Telegram file URL holds the bot's token, so images always travel as their bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from providers.base import Image, Message

# What an image whose type is unknown is labelled as (Telegram sends photos as JPEG).
_FALLBACK_MIME = "image/jpeg"


def b64(image: Image) -> str:
    """The image's bytes as standard base64 text (what Ollama's ``images`` list holds)."""
    return base64.b64encode(image.data).decode("ascii")


def data_url(image: Image) -> str:
    """``data:image/jpeg;base64,...``: the ``image_url`` of the OpenAI-style APIs."""
    mime = image.mime.strip().lower()
    if not mime.startswith("image/") or any(c in mime for c in ";, "):
        mime = _FALLBACK_MIME
    return f"data:{mime};base64,{b64(image)}"


def images_of(message: Message) -> tuple[Image, ...]:
    """The images a message carries on the wire: a user's only (no API takes others)."""
    return message.images if message.role == "user" else ()


def chat_message(message: Message, *, url_object: bool = True) -> dict[str, Any]:
    """One message as the OpenAI-style chat APIs (OpenAI, Llama, Mistral) take it: its
    text, or for a user's images a list of parts: the text, then one ``image_url`` part
    per image holding a base64 ``data:`` URL, as ``{"url": ...}`` or (Mistral,
    ``url_object=False``) the URL itself."""
    images = images_of(message)
    if not images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in images:
        url = data_url(image)
        parts.append({"type": "image_url", "image_url": {"url": url} if url_object else url})
    return {"role": message.role, "content": parts}
