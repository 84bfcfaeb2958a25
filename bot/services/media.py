"""Pictures and voice: ``/image`` drawn by an image model, photos handed to a vision
model, voice messages transcribed and then answered.

Each costs its model's ``cost`` against the daily limits like a chat message: reserved
before the provider is called, given back when it fails (or when Telegram would not take
the result). Files are downloaded by the bot through the Bot API and handed to providers
as bytes: a Telegram file URL holds the bot's token, so it never leaves the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from html import escape
from typing import TYPE_CHECKING, TypeVar

import aiohttp
from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import (
    TelegramAPIError,
)
from aiogram.types import BufferedInputFile, ReplyParameters
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.render import utf16_len
from bot.services.generate import describe
from bot.services.generations import Photo
from bot.texts import Texts
from providers import Image, ProviderError

if TYPE_CHECKING:
    from bot.services.chat import ChatService, Target
    from bot.services.core import Core
    from bot.services.quota import Reservation

log = logging.getLogger(__name__)

T = TypeVar("T")

PHOTO_PLACEHOLDER = "[photo]"  # what the history keeps of a photo, before its caption
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API serves files up to 20 MB
CAPTION_LIMIT = 1024  # UTF-16 code units in a photo's caption
TRANSCRIPT_SHOWN = 700  # characters of a transcript quoted back to the user
ACTION_EVERY = 4.5  # seconds: a chat action shows for about five

# Audio formats the speech APIs take, by MIME type, and the file name that tells them.
_AUDIO_NAMES = {
    "audio/ogg": "audio.ogg",
    "audio/opus": "audio.ogg",
    "audio/mpeg": "audio.mp3",
    "audio/mp3": "audio.mp3",
    "audio/mp4": "audio.m4a",
    "audio/x-m4a": "audio.m4a",
    "audio/m4a": "audio.m4a",
    "audio/aac": "audio.m4a",
    "audio/wav": "audio.wav",
    "audio/x-wav": "audio.wav",
    "audio/wave": "audio.wav",
    "audio/flac": "audio.flac",
    "audio/x-flac": "audio.flac",
    "audio/webm": "audio.webm",
}
_AUDIO_SUFFIXES = (".ogg", ".mp3", ".m4a", ".mp4", ".mpeg", ".mpga", ".wav", ".flac", ".webm")


class DownloadError(Exception):
    """A file could not be fetched from Telegram."""


def vision_hint(catalog: Catalog, model: ModelSpec, texts: Texts) -> str:
    """Tell the user their model can't see images, and which models can."""
    titles = ", ".join(m.title for m in catalog.vision_models.values())
    return texts.photo_no_vision.format(model=model.title, models=titles)


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-16 code units, ending with "…" when shortened."""
    if utf16_len(text) <= limit:
        return text
    kept: list[str] = []
    used = 1  # the ellipsis
    for char in text:
        used += utf16_len(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def audio_name(file_name: str | None, mime_type: str | None) -> str:
    """A file name whose suffix tells a speech API the audio's format."""
    if file_name and file_name.lower().endswith(_AUDIO_SUFFIXES):
        return file_name
    return _AUDIO_NAMES.get((mime_type or "").split(";")[0].strip().lower(), "audio.ogg")


def image_suffix(data: bytes) -> str:
    """The file suffix of a generated image, from its first bytes."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "jpg"


@contextlib.asynccontextmanager
async def chat_action(bot: Bot, target: Target, action: ChatAction) -> AsyncIterator[None]:
    """Show ``action`` ("sending a photo…") in the chat while the block runs."""

    async def repeat() -> None:
        while True:
            with contextlib.suppress(TelegramAPIError):
                await bot.send_chat_action(
                    target.chat_id, action, message_thread_id=target.thread_id
                )
            await asyncio.sleep(ACTION_EVERY)

    task = asyncio.create_task(repeat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class MediaService:
    """What /image, photos and voice messages need, beside the chat service it hands
    photos and transcripts to (and whose Core it shares: catalog, providers, limits)."""

    def __init__(self, chat: ChatService) -> None:
        self.chat = chat
        self.core: Core = chat.core
        self.catalog = chat.catalog
        self.quota = chat.quota
        self.prefs = chat.prefs

    # -- /image ----------------------------------------------------------------------

    async def draw(self, bot: Bot, target: Target, prompt: str, texts: Texts) -> bool:
        """Draw ``prompt`` with the user's image model and send the picture; True when a
        picture was sent."""
        image_id = (await self.prefs.get(target.user_id)).image
        model = self.catalog.get_image(image_id) if image_id else None
        if model is None:
            await target.say(bot, texts.image_unavailable)
            return False
        limit = self.core.settings.max_prompt_chars
        if len(prompt) > limit:
            await target.say(bot, texts.prompt_too_long.format(length=len(prompt), limit=limit))
            return False
        reservation = await self._reserve(bot, target, model, texts)
        if reservation is None:
            return False
        provider = self.core.pool.for_model(model)
        try:
            async with chat_action(bot, target, ChatAction.UPLOAD_PHOTO):
                data = await provider.generate_image(model.name, prompt)
                photo = BufferedInputFile(data, filename=f"image.{image_suffix(data)}")
                reply = self._reply(target)
                await bot.send_photo(  # 429s and 5xx are retried by the session
                    target.chat_id,
                    photo,
                    caption=cut(prompt, CAPTION_LIMIT),
                    message_thread_id=target.thread_id,
                    reply_parameters=reply,
                )
        except ProviderError as exc:
            log.warning("%s failed: %s: %s", model.id, type(exc).__name__, exc)
            await self._give_back(reservation, model, target.user_id, failed=True)
            await target.say(bot, describe(exc, texts, model.title))
            return False
        except TelegramAPIError as exc:  # the picture never reached the user: it is free
            log.warning("chat %s: the picture could not be sent: %s", target.chat_id, exc)
            await self._give_back(reservation, model, target.user_id, failed=False)
            with contextlib.suppress(TelegramAPIError):
                await target.say(bot, texts.error_generic.format(model=model.title))
            return False
        except BaseException:  # cancelled (shutdown): nothing was delivered
            await self._give_back(reservation, model, target.user_id, failed=False)
            raise
        await self._count(target.user_id, model, failed=False)
        return True

    # -- photos ----------------------------------------------------------------------

    async def see(
        self,
        bot: Bot,
        target: Target,
        file_id: str,
        size: int | None,
        mime: str,
        caption: str,
        texts: Texts,
    ) -> None:
        """A photo for the user's chat model, with its caption (or a default question),
        through the normal chat turn; a model without vision gets the user a hint."""
        model = self.catalog.models[(await self.prefs.get(target.user_id)).model]
        if not model.vision:
            await target.say(bot, vision_hint(self.catalog, model, texts))
            return
        if size is not None and size > MAX_DOWNLOAD:
            await target.say(bot, texts.file_too_big.format(limit=MAX_DOWNLOAD // 2**20))
            return
        try:
            data = await self.download(bot, file_id)
        except DownloadError as exc:
            log.warning("chat %s: photo download failed: %s", target.chat_id, exc)
            await target.say(bot, texts.download_failed)
            return
        shown = f"{PHOTO_PLACEHOLDER} {caption}".strip()
        await self.chat.answer(
            bot,
            target,
            caption or texts.photo_prompt,
            texts,
            images=(Image(data, mime),),
            shown=shown,
            photo=Photo(file_id, mime),
        )

    # -- voice -----------------------------------------------------------------------

    async def listen(
        self,
        bot: Bot,
        target: Target,
        file_id: str,
        duration: int,
        size: int | None,
        filename: str,
        texts: Texts,
    ) -> str | None:
        """Transcribe a voice message and quote the transcript to the user; the text, or
        None when there is nothing to answer (too long, a limit, a failure, silence)."""
        model = self.catalog.transcription_model
        if model is None:  # the handler checks first; a /reload may have removed it
            await target.say(bot, texts.unsupported)
            return None
        longest = self.core.settings.voice_max_seconds
        if duration > longest:
            await target.say(bot, texts.voice_too_long.format(duration=duration, limit=longest))
            return None
        if size is not None and size > MAX_DOWNLOAD:
            await target.say(bot, texts.file_too_big.format(limit=MAX_DOWNLOAD // 2**20))
            return None
        reservation = await self._reserve(bot, target, model, texts)
        if reservation is None:
            return None
        provider = self.core.pool.for_model(model)
        try:
            async with chat_action(bot, target, ChatAction.TYPING):
                audio = await self.download(bot, file_id)
                text = (await provider.transcribe(model.name, audio, filename)).strip()
        except DownloadError as exc:
            log.warning("chat %s: voice download failed: %s", target.chat_id, exc)
            await self._give_back(reservation, model, target.user_id, failed=False)
            await target.say(bot, texts.download_failed)
            return None
        except ProviderError as exc:
            log.warning("%s failed: %s: %s", model.id, type(exc).__name__, exc)
            await self._give_back(reservation, model, target.user_id, failed=True)
            await target.say(bot, describe(exc, texts, model.title))
            return None
        except BaseException:
            await self._give_back(reservation, model, target.user_id, failed=False)
            raise
        if not text:  # nothing the user can use: it is free
            await self._give_back(reservation, model, target.user_id, failed=False)
            await target.say(bot, texts.voice_empty)
            return None
        await self._count(target.user_id, model, failed=False)
        quote = texts.voice_transcript.format(text=escape(cut(text, TRANSCRIPT_SHOWN), False))
        reply = self._reply(target)
        with contextlib.suppress(TelegramAPIError):  # the answer matters more than the quote
            await bot.send_message(
                target.chat_id,
                quote,
                parse_mode="HTML",
                message_thread_id=target.thread_id,
                reply_parameters=reply,
            )
        return text

    # -- shared ----------------------------------------------------------------------

    async def download(self, bot: Bot, file_id: str) -> bytes:
        """A Telegram file's bytes, fetched through the Bot API (getFile, then the file
        path under the bot's token): the URL never leaves this process."""
        try:
            buffer = await bot.download(file_id, destination=io.BytesIO())
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            # the message of a failed download may name the URL, and so the token
            raise DownloadError(type(exc).__name__) from None
        if buffer is None:
            raise DownloadError("nothing downloaded")
        return buffer.read()

    def _reply(self, target: Target) -> ReplyParameters | None:
        if target.reply_to is None:
            return None
        return ReplyParameters(message_id=target.reply_to, allow_sending_without_reply=True)

    async def _reserve(
        self, bot: Bot, target: Target, model: ModelSpec, texts: Texts
    ) -> Reservation | None:
        """Count one request to ``model``, or tell the user which limit stops it."""
        reservation = await self.quota.reserve(target.user_id, [model])
        if reservation.ok(model.id):
            return reservation
        grant = reservation.grants[model.id]
        self.core.metrics.denials.labels(grant.name.lower()).inc()
        await target.say(bot, self.chat.limit_text(reservation, model, texts))
        return None

    async def _give_back(
        self, reservation: Reservation, model: ModelSpec, user_id: int, failed: bool
    ) -> None:
        await self.quota.refund(reservation, [model.id])
        if failed:
            await self._count(user_id, model, failed=True)

    async def _count(self, user_id: int, model: ModelSpec, failed: bool) -> None:
        """/stats: one request to ``model`` (and a failure of its provider)."""
        date, _ = self.quota.day()
        try:
            async with self.core.redis.pipeline(transaction=False) as pipe:
                self.core.stats.queue_request(pipe, date, user_id, model.id, model.provider, failed)
                await pipe.execute()
        except RedisError as exc:
            log.error("could not count a %s request in Redis: %s", model.id, exc)
