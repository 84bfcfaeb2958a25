"""Merge: the user's merge model reads a comparison's (or a revealed battle's) question
and every answer that arrived, each labelled by its model, and writes the one best
answer. It streams and counts like a chat message, and starts the conversation afresh
with the merge model (the question and the merged answer), like "Continue with"."""

from __future__ import annotations

from aiogram import Bot

from bot.catalog import Catalog
from bot.services.chat import ChatService
from bot.services.compare_store import CompareStore
from bot.services.generations import Retry
from bot.services.prefs import Prefs
from bot.services.target import Target
from bot.texts import Texts


class MergeService:
    def __init__(
        self, catalog: Catalog, prefs: Prefs, store: CompareStore, chat: ChatService
    ) -> None:
        self.catalog = catalog
        self.prefs = prefs
        self.store = store
        self.chat = chat

    async def can_merge(self, user_id: int, cid: str) -> bool:
        return await self.store.load_all(user_id, cid) is not None

    def prompt(self, texts: Texts, question: str, answers: dict[str, str]) -> str:
        """The instruction, the question, and each answer under its model's title."""
        models = self.catalog.all_models
        written = [
            texts.merge_answer.format(model=models[m].title if m in models else m, answer=a)
            for m, a in answers.items()
        ]
        return texts.merge_instruction.format(question=question, answers="\n\n".join(written))

    async def merge(self, bot: Bot, target: Target, cid: str, texts: Texts) -> bool:
        """Merge the answers kept under ``cid``; whether a merged answer was written."""
        kept = await self.store.load_all(target.user_id, cid)
        model = self.catalog.get((await self.prefs.get(target.user_id)).merge)
        if kept is None or model is None:
            await target.say(bot, texts.compare_expired)
            return False
        question, answers = kept
        outcome = await self.chat.answer(
            bot,
            target,
            self.prompt(texts, question, answers),
            texts,
            shown=question,
            model=model,
            fresh=Retry(target.chat_id, cid, kind="merge"),
        )
        if outcome is None or not outcome.ok:
            return False
        await target.say(bot, texts.merge_continued.format(model=model.title))
        return True
