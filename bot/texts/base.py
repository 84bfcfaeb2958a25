"""The shape every language fills in: a missing string is a type error, not a runtime gap."""

from __future__ import annotations

from dataclasses import dataclass
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
    # content the bot does not handle
    unsupported: str
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
    empty_answer: str  # {model}
    service_unavailable: str  # Redis or another part of the bot is down


def html(template: str, **values: object) -> str:
    """Fill an HTML template (sent with parse_mode HTML), escaping every value."""
    return template.format(**{k: escape(str(v), quote=False) for k, v in values.items()})
