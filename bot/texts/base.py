"""The shape every language fills in: a missing string is a type error, not a runtime gap.

Counts go through the language's plural rules (``bot.texts.plural``): a template writes
``{cost:#credit|credits}`` (Russian ``{cost:#кредит|кредита|кредитов}``) and a caller
passes the number; ``Texts`` turns such templates into ``Template``s when it is built,
so a plain ``.format(cost=3)`` gives "3 credits", "3 кредита". A template whose counts
have the wrong number of forms is refused at import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from bot.texts import plural
from bot.texts.plural import Template

ECHO_LIMIT = 64  # characters of a user's own input said back to them (ids, commands)


@dataclass(frozen=True)
class Texts:
    code: str  # the language's code ("en"), which picks its plural rules
    # /start and /help; {model} is the current model's title, {commands} the list below.
    help: str
    commands: dict[str, str]  # command -> description, for the menu and /help
    # /model
    model_choose: str  # {model}
    model_switched: str  # {model}
    model_unknown: str  # {model_id}, {models}
    model_current_mark: str
    # /new
    new_done: str
    # /language
    language_name: str  # this language's own name, e.g. "Русский" (buttons)
    language_name_inline: str  # the same inside a sentence: "русский", "English"
    language_choose: str  # HTML: {language} (inline name), the one the bot speaks now
    language_auto: str  # the button that follows the Telegram app's language again
    language_set: str  # said in the language just chosen
    language_auto_set: str  # {language}
    language_unknown: str  # {code}, {codes}
    model_image_current: str  # HTML, under model_choose: {model}, the user's image model
    model_image_mark: str  # before an image model's title in the /model keyboard
    model_image_switched: str  # {model}
    # content the bot does not handle
    unsupported: str  # when the bot reads text only
    unsupported_media: str  # {things}: what it does read, from the words below
    can_text: str
    can_photos: str
    can_voice: str
    list_and: str  # joins the last two of a list: " and "
    unknown_command: str  # {command}: "/foo", shortened
    # /image <prompt>
    image_usage: str
    image_unavailable: str  # no image model is usable
    # photos
    photo_prompt: str  # the question sent with a photo that has no caption
    photo_no_vision: str  # {model}: the user's model; {models}: those that see images
    file_too_big: str  # {limit} in MB
    download_failed: str
    # voice messages
    voice_too_long: str  # {duration}, {limit}: counts of seconds
    voice_transcript: str  # HTML: {text}, the transcript (escaped, maybe shortened)
    voice_empty: str
    # while an answer is being written (edited-message mode)
    thinking: str
    thought_for: str  # {seconds}: the summary of a reasoning model's collapsed thoughts
    # provider failures, one sentence each; {model} is the title. Those that suggest
    # /model have a *_no_switch twin for models the user can't switch away from (the
    # transcription model, the only image model).
    error_auth: str
    error_auth_no_switch: str
    error_not_found: str
    error_not_found_no_switch: str
    error_bad_request: str
    error_context: str
    error_rate_limited: str
    error_rate_limited_no_switch: str
    error_timeout: str
    error_unavailable: str
    error_unavailable_no_switch: str
    error_unsupported: str
    error_unsupported_no_switch: str
    error_generic: str
    interrupted: str  # appended to a partial answer; {reason} is one of the above
    shutting_down: str  # a reason: the bot was restarted mid-answer
    stopped: str  # the user pressed Stop
    stop_button: str
    not_your_button: str  # a button under someone else's message was pressed
    answer_in_file: str  # the answer was too long for messages: the rest is attached
    answer_file_name: str  # the attached file's name, without ".md"
    retry_button: str
    still_answering: str  # a second message while an answer is being written
    nothing_to_stop: str
    retry_expired: str
    prompt_too_long: str  # {length}, {limit}: counts of characters
    empty_answer: str  # {model}
    service_unavailable: str  # Redis or another part of the bot is down
    # limits; {time} is the reset time with its zone, {left} the time until then
    limit_model: str  # {model}, {limit} (requests), {time}, {left}; suggests /model
    limit_model_no_switch: str  # the same without /model
    limit_overall: str  # {limit} (credits), {time}, {left}
    limits_overall: str  # /limits: {left}, {limit} credits
    limits_no_overall: str
    limits_resets: str  # {time}, {left}
    limits_model: str  # {model}, {cost} (credits)
    limits_model_capped: str  # {model}, {cost} (credits), {left}, {limit} (requests)
    limits_model_blocked: str  # {model}, {cost}: more than the overall allowance has left
    limits_admin: str
    # /compare
    compare_choose: str  # {models}: the current set's titles
    compare_toggle_bounds: str  # {low}, {high}
    compare_need_models: str
    compare_skipped: str  # {models}
    compare_footer_time: str  # {seconds}
    compare_footer_tokens: str  # {tokens}: a count
    compare_continue: str  # {model}: button
    compare_best: str  # button
    compare_continued: str  # {model}
    compare_expired: str
    vote_counted: str  # {model}
    vote_already: str
    top_title: str
    top_line: str  # {place}, {model}, {votes}: a count
    top_empty: str
    # /arena: blind battles, and the leaderboard fitted from their votes
    arena_usage: str  # /arena alone: ask for the question (a reply to this message)
    arena_model_a: str  # the header over the first answer
    arena_model_b: str
    arena_revealed: str  # {side} ("Model A"), {model}: the header once revealed
    arena_no_models: str  # fewer than two models within the user's limits
    arena_void: str  # a model failed or was stopped: no vote
    arena_a_better: str  # buttons
    arena_b_better: str
    arena_tie: str
    arena_both_bad: str
    arena_counted: str  # the vote's answer
    arena_named: str  # {models}: answers that named their model; not counted
    arena_over_cap: str  # {limit}: a count of votes
    arena_already: str
    arena_not_ready: str  # pressed before both answered
    arena_expired: str
    top_arena_title: str
    top_arena_line: str  # {place}, {model}, {rating}, {low}, {high}, {battles}: a count
    top_provisional_title: str  # {min}: a count of battles
    top_arena_empty: str
    top_best_title: str  # the /compare "Best" table under the arena board
    # "Merge": one best answer written from a comparison's answers
    merge_button: str
    merge_with: str  # {model}: the /compare keyboard's button that picks the merge model
    merge_instruction: str  # to the merge model; {question}, {answers}
    merge_answer: str  # {model}, {answer}: one answer inside merge_instruction
    merge_continued: str  # {model}
    # admins
    admin_private_only: str  # an admin command sent in a group
    stats_title: str  # {date}, {users}: a count
    stats_model: str  # {model}, {count} requests
    stats_failures: str  # {provider}, {count} failures
    reload_done: str
    reload_refused: str  # {problem}
    hours_minutes: str  # {h}, {m}
    minutes: str  # {m}
    # /image <instruction> on a photo (its caption, or a reply to it): editing
    image_edit_usage: str  # a photo came with /image but no instruction
    image_no_edits: str  # {model}: the user's image model; {models}: those that edit
    image_edits_unavailable: str  # no usable image model edits photos
    # a provider's filter or the model declined (a safety or recitation block)
    error_declined: str  # {model}
    # paid credits with Telegram Stars (SPEC "Paid credits with Telegram Stars")
    buy_title: str  # /buy: above the packs and plans
    buy_pack_button: str  # {title}, {stars}
    buy_plan_button: str  # {title}, {stars}, {limit}
    invoice_pack_description: str  # {credits}
    invoice_plan_description: str  # {limit}
    plan_invoice_text: str  # HTML: {title}
    plan_subscribe_button: str
    checkout_refused: str  # the invoice is forged, stale, for another user or price
    checkout_unavailable: str  # Redis is away: no money taken
    paid_pack: str  # {credits}, {balance}
    paid_plan: str  # {title}, {date}
    paid_problem: str  # a payment we could not match
    subscription_canceled: str
    subscription_active: str
    subscription_failed: str
    limits_paid: str  # {credits}
    limits_plan: str  # HTML: {title}, {limit}, {date}
    paysupport: str
    terms_default: str
    refund_usage: str
    refund_done: str  # {removed}, {spent}
    refund_unknown: str
    refund_already: str
    refund_refused: str  # {problem}
    stats_payments: str  # {stars}, {spent}
    buy_command: str  # the /buy line in the menu and /help

    def __post_init__(self) -> None:
        """Check every count's forms against the language's plural rules, and make the
        templates that have counts ``Template``s."""
        if self.code not in plural.RULES:
            raise ValueError(f"no plural rules for language {self.code!r}")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str):
                continue
            plural.check(self.code, value, f"{self.code}.{field.name}")
            if plural.plural_specs(value):
                object.__setattr__(self, field.name, Template(value, self.code))

    def count(self, n: int, forms: Sequence[str] | str) -> str:
        """``n`` with the form of ``forms`` ("credit|credits", "кредит|кредита|кредитов":
        one per plural category of this language) that fits it: "3 кредита"."""
        return plural.count(self.code, n, forms)

    def plural(self, n: int, forms: Sequence[str] | str) -> str:
        """The form of ``forms`` that fits ``n``, without the number."""
        return plural.choose(self.code, n, forms)


def html(template: str, **values: object) -> str:
    """Fill an HTML template (sent with parse_mode HTML), escaping every value; numbers
    go in as numbers, for plural forms and number formats."""
    return template.format(
        **{
            k: v if isinstance(v, int | float) else escape(str(v), quote=False)
            for k, v in values.items()
        }
    )


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """A user's own input, to say back to them: at most ``limit`` characters (the last
    one "…"), on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reset_time(texts: Texts, resets_at: datetime, now: float) -> dict[str, str]:
    """``time`` ("00:00 Europe/Moscow") and ``left`` ("5 h 12 min") for limit messages."""
    minutes = max(1, math.ceil((resets_at.timestamp() - now) / 60))
    hours, minutes = divmod(minutes, 60)
    left = (
        texts.hours_minutes.format(h=hours, m=minutes) if hours else texts.minutes.format(m=minutes)
    )
    zone = getattr(resets_at.tzinfo, "key", None) or resets_at.tzname() or ""
    return {"time": f"{resets_at:%H:%M} {zone}".strip(), "left": left}
