"""What one model's answer came to, and the final text the user gets for it (a pure
function of that outcome: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import InlineKeyboardMarkup

from bot.catalog import ModelSpec
from bot.services.notices import describe
from bot.texts import Texts
from providers import ProviderError, Usage


@dataclass(frozen=True)
class Delivery:
    """How an answer is delivered: the buttons under a complete answer, those under a
    failed or stopped one, and whether a footer tells the time taken and tokens written."""

    reply_markup: InlineKeyboardMarkup | None = None
    retry_markup: InlineKeyboardMarkup | None = None
    footer: bool = False


PLAIN = Delivery()  # no buttons, no footer


@dataclass
class Outcome:
    text: str  # what the model wrote (possibly partial)
    error: ProviderError | None
    usage: Usage | None = None
    elapsed: float = 0.0  # seconds from the request to the last chunk
    message_ids: list[int] | None = None  # the delivered messages, once delivered
    stopped: bool = False  # the user pressed Stop
    ttft: float | None = None  # seconds from the request to the first text
    unreachable: bool = False  # Telegram refused with 403: blocked, or not in the group
    answered: bool = False  # the provider's text had begun: it did billable work
    cancelled: bool = False  # the bot was shutting down

    @property
    def ok(self) -> bool:
        """A complete answer with text, delivered to someone."""
        return (
            self.error is None
            and not self.stopped
            and not self.unreachable
            and not self.cancelled
            and bool(self.text.strip())
        )

    @property
    def free(self) -> bool:
        """Whether the request is given back: only when the provider failed (or the bot
        stopped) before the provider did any billable work. A user's Stop, an empty
        answer, or a chat that refused the answer all count."""
        return (self.error is not None or self.cancelled) and not self.answered


def final_text(
    outcome: Outcome, texts: Texts, model: ModelSpec, delivery: Delivery
) -> tuple[str, InlineKeyboardMarkup | None, str | None]:
    """The final Markdown for an outcome, the buttons under it, and its footer."""
    text, error = outcome.text, outcome.error
    if outcome.stopped:
        final = f"{text}\n\n_{texts.stopped}_" if text.strip() else texts.stopped
    elif error is None and not text.strip():
        final = texts.empty_answer.format(model=model.title)
    elif error is not None and not text:
        final = describe(error, texts, model)
    elif error is not None:
        reason = describe(error, texts, model)
        final = f"{text}\n\n_{texts.interrupted.format(reason=reason)}_"
    else:
        return text, delivery.reply_markup, _footer(outcome, texts) if delivery.footer else None
    return final, delivery.retry_markup, None


def interrupted_text(text: str, texts: Texts) -> str:
    """A partial answer cut short by a restart: what the user saw, then why it ends."""
    cut_short = texts.interrupted.format(reason=texts.shutting_down)
    return f"{text}\n\n_{cut_short}_"


def _footer(outcome: Outcome, texts: Texts) -> str:
    note = texts.compare_footer_time.format(seconds=outcome.elapsed)
    if outcome.usage is not None and outcome.usage.output_tokens is not None:
        note += " · " + texts.compare_footer_tokens.format(tokens=outcome.usage.output_tokens)
    return note
