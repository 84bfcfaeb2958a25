"""The shape every language fills in: a missing string is a type error, not a runtime gap."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from html import escape


@dataclass(frozen=True)
class Texts:
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
    language_name: str  # this language's own name, e.g. "Русский"
    language_choose: str  # HTML: {language}, the one the bot speaks to the user now
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
    # /image <prompt>
    image_usage: str
    image_unavailable: str  # no image model is usable
    # photos
    photo_prompt: str  # the question sent with a photo that has no caption
    photo_no_vision: str  # {model}: the user's model; {models}: those that see images
    file_too_big: str  # {limit} in MB
    download_failed: str
    # voice messages
    voice_too_long: str  # {duration}, {limit} in seconds
    voice_transcript: str  # HTML: {text}, the transcript (escaped, maybe shortened)
    voice_empty: str
    # while an answer is being written (edited-message mode)
    thinking: str
    # provider failures, one sentence each; {model} is the title
    error_auth: str
    error_not_found: str
    error_bad_request: str
    error_context: str
    error_rate_limited: str
    error_timeout: str
    error_unavailable: str
    error_unsupported: str
    error_generic: str
    interrupted: str  # appended to a partial answer; {reason} is one of the above
    shutting_down: str  # a reason: the bot was restarted mid-answer
    stopped: str  # the user pressed Stop
    stop_button: str
    retry_button: str
    still_answering: str  # a second message while an answer is being written
    nothing_to_stop: str
    retry_expired: str
    prompt_too_long: str  # {length}, {limit}
    empty_answer: str  # {model}
    service_unavailable: str  # Redis or another part of the bot is down
    # limits; {time} is the reset time with its zone, {left} the time until then
    limit_model: str  # {model}, {limit}, {time}, {left}
    limit_overall: str  # {limit}, {time}, {left}
    limits_overall: str  # /limits: {left}, {limit} credits
    limits_no_overall: str
    limits_resets: str  # {time}, {left}
    limits_model: str  # {model}, {cost}
    limits_model_capped: str  # {model}, {cost}, {left}, {limit}
    limits_admin: str
    # /compare
    compare_choose: str  # {models}: the current set's titles
    compare_toggle_bounds: str  # {low}, {high}
    compare_need_models: str
    compare_skipped: str  # {models}
    compare_footer_time: str  # {seconds}
    compare_footer_tokens: str  # {tokens}
    compare_continue: str  # {model}: button
    compare_best: str  # button
    compare_continued: str  # {model}
    compare_expired: str
    vote_counted: str  # {model}
    vote_already: str
    top_title: str
    top_line: str  # {place}, {model}, {votes}
    top_empty: str
    # admins
    stats_title: str  # {date}, {users}
    stats_model: str  # {model}, {count}
    stats_failures: str  # {provider}, {count}
    reload_done: str
    reload_refused: str  # {problem}
    hours_minutes: str  # {h}, {m}
    minutes: str  # {m}


def html(template: str, **values: object) -> str:
    """Fill an HTML template (sent with parse_mode HTML), escaping every value."""
    return template.format(**{k: escape(str(v), quote=False) for k, v in values.items()})


def reset_time(texts: Texts, resets_at: datetime, now: float) -> dict[str, str]:
    """``time`` ("00:00 Europe/Moscow") and ``left`` ("5 h 12 min") for limit messages."""
    minutes = max(1, math.ceil((resets_at.timestamp() - now) / 60))
    hours, minutes = divmod(minutes, 60)
    left = (
        texts.hours_minutes.format(h=hours, m=minutes) if hours else texts.minutes.format(m=minutes)
    )
    zone = getattr(resets_at.tzinfo, "key", None) or resets_at.tzname() or ""
    return {"time": f"{resets_at:%H:%M} {zone}".strip(), "left": left}
