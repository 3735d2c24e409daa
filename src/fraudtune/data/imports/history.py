"""Point-in-time customer features per card: each row sees only the card's rows before it, never a later one.

Rows must arrive in time order (ties in file order; see timesort). `features` reads the card's state and `add`
then appends the row, so "before" means an earlier time, or the same time earlier in the file.

Memory per card: counters, the times of its rows in the last 24 hours, and the sets of categories, merchants and
devices it has used; nothing grows with the card's whole history except those sets.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from dataclasses import dataclass, field

from fraudtune.data.schema import CATEGORIES

HOUR = 3600.0
DAY = 86400.0


@dataclass(slots=True)
class CardState:
    first_seen: float
    count: int = 0
    amount_sum: float = 0.0
    recent: list[float] = field(default_factory=list)  # times less than 24 h before the latest row, oldest first
    categories: set[str] = field(default_factory=set)
    merchants: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PastFeatures:
    """What the card's earlier rows say about the row at time `t`."""

    history_count: int
    avg_amount: float  # 0 without history
    observed_days: int  # whole days since the card's first row in the log
    usual_categories: list[str]  # SPEC categories used before, in SPEC order
    txn_last_1h: int  # earlier rows less than 1 hour before (one exactly 1 hour before is not counted)
    txn_last_24h: int  # earlier rows less than 24 hours before
    merchant_new: bool
    device_new: bool | None  # None without a device column


class History:
    """The state of every card seen so far."""

    def __init__(self) -> None:
        self.cards: dict[str, CardState] = {}

    def features(self, card: str, t: float, merchant: str, device: str | None) -> PastFeatures:
        """The features of a row of `card` at `t` (seconds) from the card's earlier rows only."""
        state = self.cards.get(card)
        if state is None:
            return PastFeatures(0, 0.0, 0, [], 0, 0, True, None if device is None else True)
        recent = state.recent
        return PastFeatures(
            history_count=state.count,
            avg_amount=round(state.amount_sum / state.count, 2),
            observed_days=int((t - state.first_seen) // DAY),
            usual_categories=[c for c in CATEGORIES if c in state.categories],
            txn_last_1h=len(recent) - bisect_right(recent, t - HOUR),
            txn_last_24h=len(recent) - bisect_right(recent, t - DAY),
            merchant_new=merchant not in state.merchants,
            device_new=None if device is None else device not in state.devices,
        )

    def add(self, card: str, t: float, amount: float, category: str, merchant: str, device: str | None) -> None:
        """Append a row (after its features were read); times older than 24 h before it are let go."""
        state = self.cards.get(card)
        if state is None:
            state = self.cards[card] = CardState(first_seen=t)
        state.count += 1
        state.amount_sum += amount
        state.recent.append(t)
        stale = bisect_right(state.recent, t - DAY)
        if stale:
            del state.recent[:stale]
        state.categories.add(category)
        state.merchants.add(sys.intern(merchant))  # one string per merchant, however many cards use it
        if device is not None:
            state.devices.add(device)
