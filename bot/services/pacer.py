"""Per-chat pacing of intermediate updates (drafts and edits) at Telegram's pace.

Every writer in a chat shares its chat's slot, so three answers streaming at once in one
chat (``/compare``) still make one update per interval between them. After a 429 the
chat waits out ``retry_after`` and then goes slower for a while.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

DRAFT_INTERVAL = 0.7  # private chats, sendMessageDraft
EDIT_INTERVAL = 1.0  # private chats, editMessageText
GROUP_INTERVAL = 3.0  # groups allow about 20 messages a minute
FIRST_INTERVAL = 0.3  # after a placeholder: the first text may show soon
MAX_SLOWDOWN = 4.0
_PRUNE_AT = 10_000


@dataclass(slots=True)
class _Slot:
    next_at: float = 0.0
    slowdown: float = 1.0


class Pacer:
    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}

    def _slot(self, chat_id: int) -> _Slot:
        slot = self._slots.get(chat_id)
        if slot is None:
            if len(self._slots) >= _PRUNE_AT:
                self._prune()
            slot = self._slots[chat_id] = _Slot()
        return slot

    def delay(self, chat_id: int) -> float:
        """Seconds until this chat may be updated again (0: now)."""
        slot = self._slots.get(chat_id)
        return 0.0 if slot is None else max(0.0, slot.next_at - time.monotonic())

    def claim(self, chat_id: int, interval: float) -> None:
        """Take the chat's slot now; the next update waits ``interval`` (slowed if needed)."""
        slot = self._slot(chat_id)
        slot.next_at = time.monotonic() + interval * slot.slowdown
        slot.slowdown = max(1.0, slot.slowdown * 0.9)  # recover gradually

    def flood(self, chat_id: int, retry_after: float) -> None:
        """Telegram said 429: wait it out, then update this chat less often for a while."""
        slot = self._slot(chat_id)
        slot.next_at = max(slot.next_at, time.monotonic() + retry_after)
        slot.slowdown = min(MAX_SLOWDOWN, slot.slowdown * 2)

    def _prune(self) -> None:
        now = time.monotonic()
        for chat_id in [c for c, s in self._slots.items() if s.next_at < now - 60]:
            del self._slots[chat_id]
