"""/image <prompt> (and /image <instruction> on a photo: as its caption, or in reply to
it), photos (and images sent as files) for vision models, voice messages and audio files
transcribed and answered."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Audio, Message, Voice

from bot.catalog import Catalog
from bot.filters import IMAGE_TYPES, Addressed, from_user, image, sound
from bot.handlers.other import unsupported
from bot.services.chat import ChatService
from bot.services.generations import Photo
from bot.services.media import MediaService, audio_name
from bot.services.target import Target
from bot.texts import Texts


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(image_command, Command("image"), from_user)
    r.message.register(photo, image, Addressed())
    r.message.register(voice, sound, Addressed())
    return r


async def image_command(
    message: Message, command: CommandObject, bot: Bot, texts: Texts, media_service: MediaService
) -> None:
    """/image <prompt> draws; on a photo (the command as its caption, or in reply to a
    photo or an image file) it edits that photo as the prompt says."""
    assert message.from_user is not None
    prompt = (command.args or "").strip()
    found = photo_of(message) or photo_of(message.reply_to_message)
    if not prompt:
        await message.answer(texts.image_edit_usage if found else texts.image_usage)
        return
    target = Target.of(message, message.from_user.id)
    if found is None:
        await media_service.draw(bot, target, prompt, texts)
        return
    photo, size = found
    await media_service.draw(bot, target, prompt, texts, photo=photo, size=size)


def photo_of(message: Message | None) -> tuple[Photo, int | None] | None:
    """The largest size of a message's photo, or its image file, with its size in bytes."""
    if message is None:
        return None
    if message.photo:
        largest = message.photo[-1]
        return Photo(largest.file_id, "image/jpeg"), largest.file_size
    document = message.document
    if document is not None and document.mime_type in IMAGE_TYPES:
        return Photo(document.file_id, document.mime_type or "image/jpeg"), document.file_size
    return None


async def photo(
    message: Message,
    prompt: str,
    bot: Bot,
    texts: Texts,
    catalog: Catalog,
    media_service: MediaService,
) -> None:
    """A photo (the largest size Telegram made) or an image file, with its caption."""
    assert message.from_user is not None
    if not catalog.vision_models:  # no model here can see: say what the bot does do
        await unsupported(message, texts, catalog)
        return
    if message.photo:
        largest = message.photo[-1]
        file_id, size, mime = largest.file_id, largest.file_size, "image/jpeg"
    else:
        assert message.document is not None
        document = message.document
        file_id, size = document.file_id, document.file_size
        mime = document.mime_type or "image/jpeg"
    target = Target.of(message, message.from_user.id)
    await media_service.see(bot, target, file_id, size, mime, prompt.strip(), texts)


async def voice(
    message: Message,
    bot: Bot,
    texts: Texts,
    catalog: Catalog,
    chat_service: ChatService,
    media_service: MediaService,
) -> None:
    """A voice message or an audio file: transcribed, quoted, then answered as if typed."""
    assert message.from_user is not None
    if catalog.transcription_model is None:
        await unsupported(message, texts, catalog)
        return
    sound: Voice | Audio
    if message.voice is not None:
        sound = message.voice
        filename = audio_name("voice.ogg", sound.mime_type)
    else:
        assert message.audio is not None
        sound = message.audio
        filename = audio_name(sound.file_name, sound.mime_type)
    target = Target.of(message, message.from_user.id)
    transcript = await media_service.listen(
        bot, target, sound.file_id, sound.duration, sound.file_size, filename, texts
    )
    if transcript:
        await chat_service.answer(bot, target, transcript, texts)
