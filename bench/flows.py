"""The events of one emailing, made day by day for the benchmark data set.

Cheap on purpose: a few random draws per event, values from small pools and keys from a
counter, so that making ten million clicks costs little next to writing them.
A destination is known by its index `i` in the emailing (its ID is `first_dest + i`).
"""

from __future__ import annotations

import bisect
import itertools
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from mailstats.kinds import KINDS
from mailstats.store import Event

DAY = 86_400
HOUR = 3_600
CLICKERS, OPENERS = 3, 4  # of every ten destinations, the first 3 click and the first 4 open
ERROR_EVERY, UNSUBSCRIBE_EVERY, ABUSE_EVERY = 25, 250, 2_500  # 4%, 0.4%, 0.04%
RECENT_DAYS = 7  # a continuous emailing's opens and clicks come from the last week's sends
BURST_DAYS, BURST_DECAY = 14, 0.55  # a mass emailing's opens and clicks fade over two weeks
SEND_HOURS = 6  # a mass emailing leaves the MTA within six hours
SOFT_BOUNCE = ("4.2.2", "452", "452 4.2.2 Mailbox full", "soft", "mailboxfull")
REPORT = '{"feedback-type":"abuse","user-agent":"SomeISP FBL/1.0","source":"bench"}'
CLICKS, IMPRESSIONS, DELIVERIES = KINDS["clicks"], KINDS["impressions"], KINDS["deliveries"]
ERRORS, ABUSES, UNSUBSCRIBES = KINDS["errors"], KINDS["abuses"], KINDS["unsubscribes"]


class Keys:
    """Unique 16-byte event keys: a random prefix for the run and a counter."""

    def __init__(self) -> None:
        self._base = secrets.randbits(64) << 64
        self._count = itertools.count(1)

    def __call__(self) -> bytes:
        return (self._base + next(self._count)).to_bytes(16, "big")


@dataclass(frozen=True)
class Pools:
    """Addresses and user agents, taken by destination so that each recipient keeps one."""

    ips: tuple[str, ...]
    open_uas: tuple[str, ...]
    devices: tuple[str, ...]  # device of each open_uas entry
    click_uas: tuple[str, ...]


@dataclass
class Flow:
    emailing_id: int
    account_id: int
    first_dest: int
    dests: int
    links: list[int]
    link_weights: list[float]
    start: int  # epoch seconds of day 0 of the data set
    days: int
    send_day: int | None  # None: sent continuously, a few every day
    clicks: int
    impressions: int
    _day_cum: list[float] = field(init=False)  # share of opens and clicks up to each day
    _link_cum: list[float] = field(init=False)

    def __post_init__(self) -> None:
        shares = self._day_shares()
        total = sum(shares)
        self._day_cum = [0.0, *itertools.accumulate(s / total for s in shares)]
        self._link_cum = list(itertools.accumulate(self.link_weights))

    def _day_shares(self) -> list[float]:
        if self.send_day is None:
            return [0.0] + [1.0] * (self.days - 1)  # day 0 has no earlier sends to click
        shares = [0.0] * self.days
        for k in range(BURST_DAYS):
            if self.send_day + k < self.days:
                shares[self.send_day + k] = BURST_DECAY**k
        return shares

    def sent_at(self, i: int) -> int:
        if self.send_day is None:
            return self.start + i * self.days * DAY // self.dests
        return self.start + self.send_day * DAY + i * SEND_HOURS * HOUR // self.dests

    def _first_sent(self, day: int) -> int:
        """Index of the first destination sent on `day` or later."""
        if self.send_day is None:
            return min(self.dests, -(-day * self.dests // self.days))
        return 0 if day <= self.send_day else self.dests

    def _on_day(self, total: int, day: int) -> int:
        cum = self._day_cum
        return round(total * cum[day + 1]) - round(total * cum[day])

    def events(self, day: int, rng: random.Random, keys: Keys, pools: Pools) -> list[Event]:
        """Every event this emailing causes on `day`; some may fall on the next day."""
        out: list[Event] = []
        for i in range(self._first_sent(day), self._first_sent(day + 1)):
            self._sent(out, i, rng, keys)
        lo, hi = self._engaged_range(day)
        if hi > lo:
            earliest = self.start + day * DAY
            if self.send_day == day:
                earliest += SEND_HOURS * HOUR
            span = (earliest, self.start + (day + 1) * DAY)
            for _ in range(self._on_day(self.clicks, day)):
                self._click(out, rng, keys, pools, lo, hi, span)
            for _ in range(self._on_day(self.impressions, day)):
                self._open(out, rng, keys, pools, lo, hi, span)
        return out

    def _engaged_range(self, day: int) -> tuple[int, int]:
        """Indexes of the destinations whose opens and clicks happen on `day`."""
        if self.send_day is not None:
            return 0, self.dests
        return self._first_sent(max(0, day - RECENT_DAYS)), self._first_sent(day)

    def _event(self, kind: Any, key: bytes, ts: int, i: int, link: int, values: tuple) -> Event:
        dest = self.first_dest + i
        return Event(kind, key, ts, self.account_id, self.emailing_id, dest, link, values)

    def _sent(self, out: list[Event], i: int, rng: random.Random, keys: Keys) -> None:
        ts = self.sent_at(i)
        if i % ERROR_EVERY == 3:  # a soft bounce, delivered at the second attempt
            out.append(self._event(ERRORS, keys(), ts, i, 0, SOFT_BOUNCE))
            out.append(self._event(DELIVERIES, keys(), ts + 600, i, 0, (2,)))
        else:
            out.append(self._event(DELIVERIES, keys(), ts, i, 0, (1,)))
        if i % UNSUBSCRIBE_EVERY == 7:
            later = ts + rng.randint(HOUR, 30 * HOUR)
            out.append(self._event(UNSUBSCRIBES, keys(), later, i, 0, ("192.0.2.7", "")))
        if i % ABUSE_EVERY == 11:
            later = ts + rng.randint(HOUR, 30 * HOUR)
            out.append(self._event(ABUSES, keys(), later, i, 0, (REPORT,)))

    def _click(self, out: list[Event], rng: random.Random, keys: Keys, pools: Pools,
               lo: int, hi: int, span: tuple[int, int]) -> None:  # fmt: skip
        pick = rng.randrange(lo, hi)
        i = pick - pick % 10 + pick % CLICKERS
        link = self.links[bisect.bisect(self._link_cum, rng.random() * self._link_cum[-1])]
        values = (pools.ips[i % len(pools.ips)], pools.click_uas[i % len(pools.click_uas)])
        out.append(self._event(CLICKS, keys(), rng.randrange(*span), i, link, values))

    def _open(self, out: list[Event], rng: random.Random, keys: Keys, pools: Pools,
              lo: int, hi: int, span: tuple[int, int]) -> None:  # fmt: skip
        pick = rng.randrange(lo, hi)
        i = pick - pick % 10 + pick % OPENERS
        ua = i % len(pools.open_uas)
        values = (pools.ips[i % len(pools.ips)], pools.open_uas[ua], pools.devices[ua])
        out.append(self._event(IMPRESSIONS, keys(), rng.randrange(*span), i, 0, values))
