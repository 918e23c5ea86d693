"""The benchmark data set: one account, four emailings, a year of events, built in bulk.

Proportions, per 100 clicks: 25 deliveries (one per destination; 4% of them after a soft
bounce, so 1 error and 1 retry), 60 impressions, 0.1 unsubscribes, 0.01 abuse reports.
Real campaigns have 10 to 20 deliveries per click; at that ratio ten million clicks would
mean 100-200 million events, hours of generation. The data set keeps the clicks the goals
are about and scales the other kinds down, so each delivered message is clicked about
four times (by 30% of the recipients) and opened 2.4 times (by 40%).
Events are written in time order, so IDs grow with timestamps as they do in production.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from flows import DAY, Flow, Keys, Pools
from pools import make_pools

from mailstats.store import Event, Store
from mailstats.timefmt import format_time
from mailstats.tracking.render import extract_links

TIMEZONE = "Europe/Amsterdam"
ZONE = ZoneInfo(TIMEZONE)
ACCOUNT = "bench"
SEED = 20_240_601
DELIVERIES_PER_CLICK = 0.25
IMPRESSIONS_PER_CLICK = 0.6


@dataclass(frozen=True)
class Mailing:
    subject: str
    share: float  # of all destinations and events
    send: float | None  # when it went out, as a fraction of the year; None: every day
    type: str = "mass"


MAILINGS = (
    Mailing("Your account this week", 0.60, None, "individual"),  # the big one: 10M+ events
    Mailing("Spring sale: 20% off all rain jackets", 0.15, 0.30),
    Mailing("New arrivals: lightweight tents for summer", 0.15, 0.55),
    Mailing("Last chance: free shipping ends tonight", 0.10, 0.85),
)
LINKS = (
    ("https://www.northwind.example/campaign", 12.0),
    ("https://www.northwind.example/sale/rain-jackets?utm_source=newsletter", 30.0),
    ("https://www.northwind.example/p/skyline-shell", 8.0),
    ("https://www.northwind.example/p/drizzle-jacket", 4.0),
    ("https://www.northwind.example/p/torrent-trousers", 2.7),
    ("https://www.northwind.example/account/orders?customer={$profile.customerid}", 4.0),
    ("https://www.northwind.example/newsletter/archive", 1.0),
    ("https://www.instagram.com/northwind.outdoor", 1.0),
    ("https://www.facebook.com/northwindoutdoor", 0.7),
    ("https://www.northwind.example/preferences?customer={$profile.customerid}", 1.5),
)


@dataclass
class DataSet:
    account_id: int
    token: str  # an API access token of the account
    flows: list[Flow]
    start: int  # epoch seconds, UTC midnight
    days: int
    counts: Counter[str]  # events per kind
    clicks_per_day: list[int]
    seconds: float

    @property
    def big(self) -> Flow:
        return self.flows[0]

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    def save(self, path: Path) -> None:
        """Remember what was built, so that `--reuse` can measure it again."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["flows"] = [{f.name: getattr(flow, f.name) for f in dataclasses.fields(flow)
                            if f.init} for flow in self.flows]  # fmt: skip
        path.write_bytes(orjson.dumps(fields))

    @classmethod
    def load(cls, path: Path) -> DataSet:
        fields = orjson.loads(path.read_bytes())
        fields["flows"] = [Flow(**flow) for flow in fields["flows"]]
        fields["counts"] = Counter(fields["counts"])
        return cls(**fields)


def local(ts: int) -> str:
    """An epoch as the API writes it: local time in the account's zone."""
    return format_time(ts, ZONE)


def _html(subject: str) -> str:
    anchors = "\n".join(f'<p><a href="{url.replace("&", "&amp;")}">link {n}</a></p>'
                        for n, (url, _) in enumerate(LINKS))  # fmt: skip
    return f"<!DOCTYPE html><html><body><h1>{subject}</h1>\n{anchors}\n</body></html>"


def _destination_rows(account_id: int, flow: Flow, first: int, count: int) -> list[tuple]:
    e = flow.emailing_id
    return [
        (account_id, e, flow.sent_at(i), f"r{e}.{i}@example.com", str(100_000 + i), None,
         f'{{"customerid":"C{i}"}}', f"msb{e}x{i}")
        for i in range(first, first + count)
    ]  # fmt: skip


def add_destinations(store: Store, flow: Flow) -> int:
    """Register the flow's recipients in bulk; return the ID of the first one.

    Store.create_destinations makes one round trip per recipient; millions of them would
    take longer than the events, so this writes the same rows with executemany.
    """
    mark = store.backend.placeholder
    columns = "account_id, emailing_id, created_at, email, profile, subprofile, fields, message_key"
    sql = f"INSERT INTO destinations ({columns}) VALUES ({', '.join([mark] * 8)})"
    with store.backend.transaction() as cur:
        for first in range(0, flow.dests, 50_000):
            count = min(50_000, flow.dests - first)
            cur.executemany(sql, _destination_rows(flow.account_id, flow, first, count))
        cur.execute(
            store.q["emailing_count_destinations"], {"n": flow.dests, "id": flow.emailing_id}
        )
    lo, hi, n = store.backend.fetch(
        f"SELECT min(id), max(id), count(*) FROM destinations WHERE emailing_id = {mark}",
        [flow.emailing_id],
    )[0]
    if n != flow.dests or hi - lo + 1 != n:
        raise RuntimeError(f"destination IDs of emailing {flow.emailing_id} are not contiguous")
    return int(lo)


def _flow(store: Store, account_id: int, m: Mailing, clicks: int, start: int, days: int) -> Flow:
    html = _html(m.subject)
    links = [(s.start, s.end, s.url) for s in extract_links(html)]
    send_day = None if m.send is None else int(m.send * days)
    created = start if send_day is None else start + send_day * DAY
    emailing_id = store.create_emailing(
        account_id, subject=m.subject, from_name="Northwind", from_email="news@northwind.example",
        html=html, text=None, tags=["bench"], type=m.type, links=links, created_at=created,
    )  # fmt: skip
    flow = Flow(
        emailing_id, account_id, 0, max(1, round(clicks * DELIVERIES_PER_CLICK * m.share)),
        [link.id for link in store.links(emailing_id)], [w for _, w in LINKS], start, days,
        send_day, round(clicks * m.share), round(clicks * IMPRESSIONS_PER_CLICK * m.share),
    )  # fmt: skip
    flow.first_dest = add_destinations(store, flow)
    return flow


class _Batches:
    """Hands events to Store.insert_events in batches and keeps the counts."""

    def __init__(self, store: Store, size: int, progress: Callable[[str], None]) -> None:
        self.store, self.size, self.progress = store, size, progress
        self.pending: list[Event] = []
        self.counts: Counter[str] = Counter()
        self.insert_seconds = 0.0
        self._started = self._said = time.monotonic()

    def add(self, events: list[Event]) -> None:
        self.pending.extend(events)
        while len(self.pending) >= self.size:
            self._write(self.pending[: self.size])
            del self.pending[: self.size]

    def flush(self) -> None:
        if self.pending:
            self._write(self.pending)
            self.pending = []

    def _write(self, batch: list[Event]) -> None:
        t0 = time.monotonic()
        self.store.insert_events(batch)
        self.insert_seconds += time.monotonic() - t0
        self.counts.update(e.kind.name for e in batch)
        if time.monotonic() - self._said > 15:
            self._said = time.monotonic()
            done = sum(self.counts.values())
            rate = done / (self._said - self._started)
            self.progress(f"  {done:,} events written ({rate:,.0f}/s)")


def _write_events(flows: list[Flow], pools: Pools, batches: _Batches) -> list[int]:
    """Every flow's events, day by day in time order; returns the clicks of each day."""
    rng, keys = random.Random(SEED), Keys()
    later: list[Event] = []
    clicks_per_day = []
    for day in range(flows[0].days):
        day_end = flows[0].start + (day + 1) * DAY
        events = later
        for flow in flows:
            events.extend(flow.events(day, rng, keys, pools))
        today = sorted((e for e in events if e.ts < day_end), key=attrgetter("ts"))
        later = [e for e in events if e.ts >= day_end]
        clicks_per_day.append(sum(1 for e in today if e.kind.code == 1))
        batches.add(today)
    batches.flush()  # what would happen after the last day (a few unsubscribes) is left out
    return clicks_per_day


def build(store: Store, clicks: int, days: int, batch: int,
          progress: Callable[[str], None]) -> DataSet:  # fmt: skip
    """Fill an empty database; the data ends at the last UTC midnight."""
    t0 = time.monotonic()
    account = store.ensure_account(ACCOUNT, TIMEZONE)
    token = store.create_token(ACCOUNT, TIMEZONE)
    start = (int(time.time()) // DAY - days) * DAY
    flows = [_flow(store, account.id, m, clicks, start, days) for m in MAILINGS]
    progress(f"  {sum(f.dests for f in flows):,} destinations in {time.monotonic() - t0:.1f} s")
    batches = _Batches(store, batch, progress)
    clicks_per_day = _write_events(flows, make_pools(SEED), batches)
    seconds = time.monotonic() - t0
    data = DataSet(account.id, token, flows, start, days, batches.counts, clicks_per_day, seconds)
    progress(
        f"  {data.events:,} events in {seconds:.1f} s: {data.events / seconds:,.0f} events/s"
        f" overall, {data.events / batches.insert_seconds:,.0f}/s inside insert_events"
    )
    return data
