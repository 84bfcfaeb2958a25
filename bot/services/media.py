"""Pictures and voice: ``/image`` drawn by an image model (or a photo edited by one that
edits), photos handed to a vision model, voice messages transcribed and then answered.

Each costs its model's ``cost`` against the daily limits like a chat message: reserved
before the provider is called, given back when it fails (or when Telegram would not take
the result). Files are downloaded by the bot through the Bot API and handed to providers
as bytes: a Telegram file URL holds the bot's token, so it never leaves the bot.
"""

from __future__ import annotations

import contextlib
import io
import logging
from html import escape

import aiohttp
from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BufferedInputFile

from bot.catalog import Catalog, ModelSpec
from bot.render import utf16_len
from bot.services.admission import Admission
from bot.services.answers import Answers
from bot.services.chat import ChatService
from bot.services.generations import Photo, Retry
from bot.services.notices import vision_hint
from bot.services.prefs import Prefs
from bot.services.target import Target, chat_action
from bot.texts import Texts
from providers import Image

log = logging.getLogger(__name__)

PHOTO_PLACEHOLDER = "[photo]"  # what the history keeps of a photo, before its caption
MAX_DOWNLOAD = 20 * 1024 * 1024  # the Bot API serves files up to 20 MB
CAPTION_LIMIT = 1024  # UTF-16 code units in a photo's caption
TRANSCRIPT_SHOWN = 700  # characters of a transcript quoted back to the user

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


class MediaService:
    """What /image, photos and voice messages need: photos and transcripts go on to the
    chat service as chat turns."""

    def __init__(
        self,
        catalog: Catalog,
        prefs: Prefs,
        admission: Admission,
        answers: Answers,
        chat: ChatService,
        voice_max_seconds: int,
    ) -> None:
        self.catalog = catalog
        self.prefs = prefs
        self.admission = admission
        self.answers = answers
        self.chat = chat
        self.voice_max_seconds = voice_max_seconds

    # -- /image ----------------------------------------------------------------------

    async def draw(
        self,
        bot: Bot,
        target: Target,
        prompt: str,
        texts: Texts,
        photo: Photo | None = None,
        size: int | None = None,
    ) -> bool:
        """Draw ``prompt`` with the user's image model, or with ``photo`` (a Telegram
        file: ``size`` bytes when known) edit that photo as ``prompt`` says, and send the
        picture; True when a picture was sent. The photo is downloaded by the bot and
        sent to the provider as data. A picture the provider made counts, even if
        Telegram then refuses it; a failure before it is given back."""
        image_id = (await self.prefs.get(target.user_id)).image
        model = self.catalog.get_image(image_id) if image_id else None
        if model is None:
            await target.say(bot, texts.image_unavailable)
            return False
        images: tuple[Image, ...] = ()
        if photo is not None:
            if not model.edits:
                await target.say(bot, self.edit_hint(model, texts))
                return False
            if size is not None and size > MAX_DOWNLOAD:
                await target.say(bot, texts.file_too_big.format(limit=MAX_DOWNLOAD // 2**20))
                return False
            try:
                images = (Image(await self.download(bot, photo.file_id), photo.mime),)
            except DownloadError as exc:
                log.warning("chat %s: photo download failed: %s", target.chat_id, exc)
                await target.say(bot, texts.download_failed)
                return False
        several = len(self.catalog.image_models) > 1
        ticket = await self.admission.admit(
            bot, target, texts, [model], prompt=prompt, switchable=several
        )
        if ticket is None:
            return False
        async with chat_action(bot, target, ChatAction.UPLOAD_PHOTO):
            data = await self.answers.once(
                bot,
                target,
                texts,
                ticket,
                model,
                lambda provider: provider.generate_image(
                    model.name, prompt, images, api=model.image_api
                ),
                switchable=several,
                retry=Retry(target.chat_id, prompt, photo, kind="image"),
            )
            if data is None:
                return False
            picture = BufferedInputFile(data, filename=f"image.{image_suffix(data)}")
            try:
                await bot.send_photo(
                    target.chat_id,
                    picture,
                    caption=cut(prompt, CAPTION_LIMIT),
                    message_thread_id=target.thread_id,
                    reply_parameters=target.reply_parameters(),
                )
            except TelegramAPIError as exc:
                log.warning("chat %s: the picture could not be sent: %s", target.chat_id, exc)
                with contextlib.suppress(TelegramAPIError):
                    await target.say(bot, texts.error_generic.format(model=model.title))
                return False
        return True

    def edit_hint(self, model: ModelSpec, texts: Texts) -> str:
        """The user's image model doesn't edit photos: which models do."""
        editors = self.catalog.editing_models
        if not editors:
            return texts.image_edits_unavailable
        titles = ", ".join(m.title for m in editors.values())
        return texts.image_no_edits.format(model=model.title, models=titles)

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
        through the normal chat turn; a model without vision gets the user a hint before
        anything is downloaded."""
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
        None when there is nothing to answer (too long, a limit, a failure, silence). A
        transcription the provider made counts, even when it is empty."""
        model = self.catalog.transcription_model
        if model is None:  # the handler checks first; a /reload may have removed it
            await target.say(bot, texts.unsupported)
            return None
        longest = self.voice_max_seconds
        if duration > longest:
            await target.say(bot, texts.voice_too_long.format(duration=duration, limit=longest))
            return None
        if size is not None and size > MAX_DOWNLOAD:
            await target.say(bot, texts.file_too_big.format(limit=MAX_DOWNLOAD // 2**20))
            return None
        try:
            audio = await self.download(bot, file_id)
        except DownloadError as exc:
            log.warning("chat %s: voice download failed: %s", target.chat_id, exc)
            await target.say(bot, texts.download_failed)
            return None
        ticket = await self.admission.admit(bot, target, texts, [model], switchable=False)
        if ticket is None:
            return None
        async with chat_action(bot, target, ChatAction.TYPING):
            text = await self.answers.once(
                bot,
                target,
                texts,
                ticket,
                model,
                lambda provider: provider.transcribe(model.name, audio, filename),
                switchable=False,
                retry=Retry(target.chat_id, filename, Photo(file_id, filename), kind="voice"),
            )
        if text is None:
            return None
        if not text.strip():
            await target.say(bot, texts.voice_empty)
            return None
        quote = texts.voice_transcript.format(
            text=escape(cut(text.strip(), TRANSCRIPT_SHOWN), False)
        )
        with contextlib.suppress(TelegramAPIError):  # the answer matters more than the quote
            await target.say(bot, quote, parse_mode="HTML")
        return text.strip()

    # -- shared ----------------------------------------------------------------------

    async def download(self, bot: Bot, file_id: str) -> bytes:
        """A Telegram file's bytes, fetched through the Bot API (getFile, then the file
        path under the bot's token): the URL never leaves this process. At most
        ``MAX_DOWNLOAD`` bytes are read, whatever the file's stated size."""
        try:
            file = await bot.get_file(file_id)
            if file.file_size is not None and file.file_size > MAX_DOWNLOAD:
                raise DownloadError("too big")
            if file.file_path is None:
                raise DownloadError("no file path")
            buffer = io.BytesIO()
            async for chunk in bot.session.stream_content(
                bot.session.api.file_url(bot.token, file.file_path),
                timeout=60,
                chunk_size=65536,
                raise_for_status=True,
            ):
                buffer.write(chunk)
                if buffer.tell() > MAX_DOWNLOAD:
                    raise DownloadError("too big")
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            # the message of a failed download may name the URL, and so the token
            raise DownloadError(type(exc).__name__) from None
        return buffer.getvalue()
