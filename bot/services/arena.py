"""/arena: a blind battle. Two chat models the user may use now, chosen among the pairs
with the fewest counted battles, answer one fresh question at once as "Model A" and
"Model B", through the same admission, streaming, Stop and accounting as /compare. Once
both have answered, the asker votes once; then both messages are edited to show who was
who, with "Continue with" and "Merge" under them.

A battle where a model fails is void: both models' requests are given back, and there
is nothing to vote on. A Stop voids it too (what the providers did still counts, as
everywhere). An answer that names its own model (title, id or provider model name) can
still be voted on, but the vote is not counted in the ratings.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup, InputRichMessage, MessageEntity

from bot.catalog import Catalog, ModelSpec
from bot.keyboards import arena_vote_keyboard, revealed_keyboard
from bot.render import MAX_MESSAGE_LENGTH, Part, utf16_len
from bot.rich import RichPart, paragraph
from bot.services import ratings
from bot.services.admission import Admission, Ticket
from bot.services.answer_writer import AnswerWriter
from bot.services.arena_store import ArenaStore, Battle, Vote
from bot.services.compare import CompareService
from bot.services.layouts import Content
from bot.services.outcome import Outcome
from bot.services.quota import Quota, Usage
from bot.services.target import Target
from bot.texts import Texts
from bot.texts.base import html

log = logging.getLogger(__name__)

SIDES = ("a", "b")


@dataclass(frozen=True)
class VoteResult:
    """What a vote came to, and the battle it was for (None when it was refused)."""

    vote: Vote
    battle: Battle | None


def names_itself(model: ModelSpec, text: str) -> bool:
    """Whether an answer gives its model away: its title, id or provider name."""
    lowered = text.casefold()
    return any(name.casefold() in lowered for name in (model.title, model.id, model.name))


def pick_pair(
    models: Sequence[ModelSpec], battles: dict[frozenset[str], int], rng: random.Random
) -> tuple[ModelSpec, ModelSpec] | None:
    """Two different models, from the pairs with the fewest counted battles (so every
    pair fills up), in a random order; None with fewer than two."""
    pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
    if not pairs:
        return None
    fewest = min(battles.get(frozenset((a.id, b.id)), 0) for a, b in pairs)
    a, b = rng.choice([p for p in pairs if battles.get(frozenset((p[0].id, p[1].id)), 0) == fewest])
    return (a, b) if rng.random() < 0.5 else (b, a)


def side_header(texts: Texts, side: str, model: ModelSpec | None = None) -> Part:
    """ "Model A" in bold (and once revealed, its model's title) over an answer."""
    name = texts.arena_model_a if side == "a" else texts.arena_model_b
    title = name if model is None else texts.arena_revealed.format(side=name, model=model.title)
    return Part(f"{title}\n", [MessageEntity(type="bold", offset=0, length=utf16_len(title))])


class ArenaService:
    def __init__(
        self,
        catalog: Catalog,
        quota: Quota,
        admission: Admission,
        compare: CompareService,
        store: ArenaStore,
        daily_votes: int,
        rng: random.Random | None = None,
    ) -> None:
        self.catalog = catalog
        self.quota = quota
        self.admission = admission
        self.compare = compare
        self.store = store
        self.daily_votes = daily_votes
        self.rng = rng or random.SystemRandom()

    def affordable(self, user_id: int, usage: Usage) -> list[ModelSpec]:
        """The chat models a request of this user may go to now (within every limit)."""
        models = list(self.catalog.models.values())
        if self.quota.is_exempt(user_id):
            return models
        left = self.quota.overall_cap - usage.total if self.quota.overall_cap else None
        return [
            m
            for m in models
            if (not m.daily_limit or usage.per_model.get(m.id, 0) < m.daily_limit)
            and (left is None or m.cost <= left)
        ]

    async def battle(self, bot: Bot, target: Target, question: str, texts: Texts) -> None:
        """Run one battle for ``question``: two answers, then the vote buttons."""
        async with self.compare.holding(bot, target, texts) as held:
            if held is None:
                return
            _, gen_id = held
            async with self.store.redis.pipeline(transaction=False) as pipe:
                self.quota.queue_usage(pipe, target.user_id)
                self.store.queue_pairs(pipe)
                raw_usage, raw_pairs = await pipe.execute()
            candidates = self.affordable(target.user_id, self.quota.parse_usage(raw_usage))
            pair = pick_pair(candidates, self.store.battles_between(raw_pairs), self.rng)
            if pair is None:
                await target.say(bot, texts.arena_no_models)
                return
            ticket = await self.admission.admit(bot, target, texts, pair, prompt=question)
            if ticket is None:
                return
            battle_id = secrets.token_hex(6)
            a, b = pair
            await self.store.start(target.user_id, battle_id, question, a.id, b.id, target.chat_id)
            headers = [side_header(texts, side) for side in SIDES]
            answered = await self.compare.ask(
                bot, target, ticket, question, texts, gen_id, battle_id, headers, blind=True
            )
            await self._after(bot, target, texts, ticket, battle_id, answered)

    async def _after(
        self,
        bot: Bot,
        target: Target,
        texts: Texts,
        ticket: Ticket,
        battle_id: str,
        answered: list[tuple[Outcome, AnswerWriter]],
    ) -> None:
        """Both answers are in: the vote buttons under the second, or a void battle."""
        shown: dict[str, dict[str, Any]] = {
            side: {
                "id": (outcome.message_ids or [0])[0],
                "last": (outcome.message_ids or [0])[-1],
                **_as_shown(writer.first_part),
            }
            for side, (outcome, writer) in zip(SIDES, answered, strict=True)
        }
        ok = all(outcome.ok and outcome.message_ids for outcome, _ in answered)
        named = [
            model.id
            for model, (outcome, _) in zip(ticket.models, answered, strict=True)
            if names_itself(model, outcome.text)
        ]
        state = "ready" if ok else "void"
        await self.store.finish(target.user_id, battle_id, state, named, shown)
        if not ok:
            if any(o.error is not None for o, _ in answered):  # a model failed: both free
                for model in ticket.models:
                    await self.admission.refund(ticket, model)
            await target.say(bot, texts.arena_void)
            return
        try:
            await bot.edit_message_reply_markup(
                chat_id=target.chat_id,
                message_id=int(shown["b"]["last"]),
                reply_markup=arena_vote_keyboard(battle_id, texts),
            )
        except TelegramAPIError as exc:
            log.warning("arena %s: the vote buttons were refused: %s", battle_id, exc)

    async def vote(
        self, bot: Bot, user_id: int, battle_id: str, choice: str, texts: Texts
    ) -> VoteResult:
        """The asker's one vote: counted (or not, and why), then both answers revealed."""
        date, resets_at = self.quota.day()
        keep = int(resets_at.timestamp() - self.quota.clock()) + 3600
        vote = await self.store.vote(user_id, battle_id, choice, date, self.daily_votes, keep)
        if vote in (Vote.UNKNOWN, Vote.NOT_READY, Vote.ALREADY):
            return VoteResult(vote, None)
        battle = await self.store.load(user_id, battle_id)
        if battle is None:
            return VoteResult(Vote.UNKNOWN, None)
        if vote == Vote.COUNTED:
            await self.store.count(battle.a, battle.b, choice)
        await self._reveal(bot, battle, battle_id, texts)
        return VoteResult(vote, battle)

    async def board_lines(self, texts: Texts) -> list[str]:
        """The arena leaderboard as HTML lines (rated, then provisional); none without
        a counted battle. Fitted at most every ``BOARD_SECONDS`` (or after a vote), and
        shared through Redis so that every replica shows the same board."""
        cached = await self.store.cached_board()
        if cached is None:
            fitted = ratings.fit(await self.store.pairs())
            cached = json.dumps([dataclasses.asdict(r) for r in fitted])
            await self.store.cache_board(cached)
        board = [ratings.Rating(**row) for row in json.loads(cached)]
        board = [r for r in board if r.model in self.catalog.all_models]
        if not board:
            return []
        lines = [texts.top_arena_title]
        rated = [r for r in board if not r.provisional]
        provisional = [r for r in board if r.provisional]
        for place, row in enumerate(rated, start=1):
            lines.append(self._board_line(texts, place, row))
        if provisional:
            lines += ["", html(texts.top_provisional_title, min=ratings.PROVISIONAL_BATTLES)]
            for place, row in enumerate(provisional, start=1):
                lines.append(self._board_line(texts, place, row))
        return lines

    def _board_line(self, texts: Texts, place: int, row: ratings.Rating) -> str:
        return html(
            texts.top_arena_line,
            place=place,
            model=self.catalog.all_models[row.model].title,
            rating=_whole(row.rating),
            low=_whole(row.low),
            high=_whole(row.high),
            battles=row.battles,
        )

    async def _reveal(self, bot: Bot, battle: Battle, battle_id: str, texts: Texts) -> None:
        """Edit both answers' first messages: the model's title beside "Model A", and
        "Continue with" it (and "Merge") underneath; the vote buttons go."""
        for side, model_id in zip(SIDES, (battle.a, battle.b), strict=True):
            model = self.catalog.all_models.get(model_id)
            shown = battle.shown.get(side)
            if model is None or not shown or not shown.get("id"):
                continue
            markup = revealed_keyboard(battle_id, model, texts)
            if shown["last"] != shown["id"]:  # the vote buttons were on a later message
                await _quietly(
                    bot.edit_message_reply_markup(
                        chat_id=battle.chat_id, message_id=shown["last"], reply_markup=None
                    )
                )
            new = side_header(texts, side, model)
            if "blocks" in shown:  # a rich message: its first block is the header
                blocks = [paragraph(new.text, new.entities), *shown["blocks"][1:]]
                await _quietly(
                    bot.edit_message_text(
                        chat_id=battle.chat_id,
                        message_id=shown["id"],
                        rich_message=InputRichMessage.model_validate({"blocks": blocks}),
                        reply_markup=markup,
                    )
                )
                continue
            text, entities = _retitled(shown, side_header(texts, side), new)
            await _quietly(
                bot.edit_message_text(
                    chat_id=battle.chat_id,
                    message_id=shown["id"],
                    text=text,
                    entities=entities,
                    reply_markup=markup,
                )
                if utf16_len(text) <= MAX_MESSAGE_LENGTH
                else _markup_only(bot, battle.chat_id, shown["id"], markup)
            )


def _whole(value: float) -> str:
    return str(round(value)) if math.isfinite(value) else "?"


def _as_shown(part: Content | None) -> dict[str, Any]:
    """The first message of an answer as it is kept for the reveal."""
    if isinstance(part, RichPart):
        return {"blocks": [b.model_dump(mode="json", exclude_none=True) for b in part.blocks]}
    return {
        "text": part.text if part is not None else "",
        "entities": [e.model_dump(exclude_none=True) for e in (part.entities if part else [])],
    }


def _retitled(shown: dict[str, Any], old: Part, new: Part) -> tuple[str, list[MessageEntity]]:
    """The first message as shown, its header ``old`` replaced by ``new``."""
    body = shown["text"][len(old.text) :]
    shift = utf16_len(new.text) - utf16_len(old.text)
    entities = [
        MessageEntity(**{**e, "offset": e["offset"] + shift})
        for e in shown["entities"][len(old.entities) :]
    ]
    return new.text + body, [*new.entities, *entities]


async def _markup_only(
    bot: Bot, chat_id: int, message_id: int, markup: InlineKeyboardMarkup
) -> Any:
    return await bot.edit_message_reply_markup(
        chat_id=chat_id, message_id=message_id, reply_markup=markup
    )


async def _quietly(call: Any) -> None:
    """An edit that may fail (the message was deleted, or is too old): logged, not raised."""
    try:
        await call
    except TelegramAPIError as exc:
        log.info("arena: an edit was refused: %s", exc)
