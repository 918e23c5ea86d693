"""Verdicts in the derive step: machine reasons of new clicks and opens, then settling.

Runs inside the derive transaction, right after a batch's events are inserted, as three
separate steps over the stored rows (a later step, such as one that trims addresses, can
follow them in the same transaction):

1. `mark`: what each new event shows on its own, address and user agent, from the values
   as captured (read before any privacy setting trims or drops them; Python, once per
   distinct pair; the rows are updated set-based by key);
2. `examine`: what the events of one message show together (too soon after the delivery or
   the sending, a burst of links, the trap link), for every unsettled event of a message
   that got new events; evidence that arrives late (the rest of a burst, a delivery
   report) comes with a new event, so it counts until the event settles;
3. `settle`: events whose window has passed become settled; their counters (`settled`,
   `humans`, `hfirsts` in event_blocks) and the earliest human event of each pair
   (`hfirst`, the `human_firsts` table) follow.

Only settled events are shown by `bots=exclude` and `bots=only` (events.HUMAN_SETTLED).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailstats import verdicts as v
from mailstats.kinds import CLICKS, DELIVERIES, KINDS

KIND_CODES = frozenset(kind.code for kind in KINDS.values() if kind.verdicts)
_KINDS = ", ".join(str(code) for code in sorted(KIND_CODES))
_GROUP = "kind, destination_id, link_id"
# The trap link's place in its template: none (-2; the relay's own links have -1).
TRAP_START = -2


class _Executes(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


@dataclass(frozen=True)
class Dialect:
    """What differs: the placeholder, and how a list of hints reaches an UPDATE."""

    name: str  # "sqlite" or "postgres"
    mark: str

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)


SQLITE = Dialect("sqlite", "?")
POSTGRES = Dialect("postgres", "%s")

# SQLite keeps the hints of a batch in a temporary table (made with the staging tables).
SQLITE_HINTS = "CREATE TEMP TABLE IF NOT EXISTS hints (key BLOB PRIMARY KEY, r INTEGER, v INTEGER)"
# The new clicks and opens as captured, for `hints`: read before anything trims an address
# or drops a user agent (SQLite: from the staged batch).
SQLITE_CAPTURED = f"SELECT key, kind, ip, useragent FROM temp.batch WHERE kind IN ({_KINDS})"
# PostgreSQL: the rows of the capture log that the derive statement is about to take.
POSTGRES_CAPTURED = (
    "SELECT key, kind, ip, useragent FROM (SELECT key, kind, ip, useragent FROM capture_log"
    f" ORDER BY id LIMIT %s) oldest WHERE kind IN ({_KINDS})"
)

Captured = tuple[bytes, int, str | None, str | None]  # key, kind code, ip, user agent


def hints(rows: Sequence[Captured], rules: v.Rules) -> list[tuple[bytes, int, int]]:
    """(key, reasons, verdict) of the events whose address or user agent names a machine,
    from their values as captured; each distinct address and agent is looked up once."""
    seen: dict[tuple[int, str | None, str | None], tuple[int, int]] = {}
    out = []
    for key, kind, ip, ua in rows:
        pair = (int(kind), ip, ua)
        found = seen.get(pair)
        if found is None:
            found = seen[pair] = rules.classify(pair[0] == CLICKS.code, ip, ua)
        if found[0]:
            out.append((bytes(key), *found))
    return out


def mark(cur: _Executes, d: Dialect, found: Sequence[tuple[bytes, int, int]], fresh: str,
         args: Sequence[Any]) -> None:  # fmt: skip
    """Reasons and verdicts from each new event's address and user agent (`hints`), set on
    the stored events `fresh` selects (a condition on alias `{a}`, such as `{a}.id > ?`)."""
    if not found:
        return
    where = fresh.format(a="e")
    if d.name == "sqlite":
        cur.execute("DELETE FROM temp.hints")
        for hint in found:
            cur.execute("INSERT OR IGNORE INTO temp.hints VALUES (?, ?, ?)", hint)
        cur.execute(
            "UPDATE events AS e SET reasons = e.reasons | h.r, verdict = h.v"
            f" FROM temp.hints h WHERE e.key = h.key AND {where}",
            list(args),
        )
        return
    keys, reasons, verdicts = (list(c) for c in zip(*found, strict=True))
    cur.execute(
        "UPDATE events e SET reasons = e.reasons | h.r, verdict = h.v FROM"
        " unnest(%s::bytea[], %s::int[], %s::smallint[]) AS h(key, r, v)"
        f" WHERE e.key = h.key AND {d.sql(where)}",
        [keys, reasons, verdicts, *args],
    )


def examine(cur: _Executes, d: Dialect, fresh: str, args: Sequence[Any], rules: v.Rules) -> None:
    """Reasons that come from the other events of the message, for every unsettled event of
    a message with new events (new ones included). Evidence can only come with new events,
    so an event is looked at again whenever its message gets one, until it settles."""
    examined = (
        f"x.settled <> 1 AND x.settled = 0 AND x.destination_id IN"
        f" (SELECT f.destination_id FROM events f WHERE {fresh.format(a='f')})"
    )
    b, soon = rules.burst_seconds, rules.too_soon
    # (an event before the sending or the delivery is history imported, or clocks apart)
    too_soon = (
        "EXISTS (SELECT 1 FROM destinations s WHERE s.id = x.destination_id"
        " AND x.ts >= s.created_at AND x.ts < s.created_at + ?)"
        " OR EXISTS (SELECT 1 FROM events y WHERE y.destination_id = x.destination_id"
        f" AND y.kind = {DELIVERIES.code} AND y.ts <= x.ts AND y.ts > x.ts - ?)"
    )
    burst = (
        f"x.kind = {CLICKS.code} AND (SELECT count(DISTINCT o.link_id) FROM events o"
        f" WHERE o.destination_id = x.destination_id AND o.kind = {CLICKS.code}"
        " AND o.ts >= x.ts - ? AND o.ts <= x.ts + ?) >= ?"
    )
    if rules.burst_links == 2:  # the default: another link near it is enough (cheaper)
        burst = (
            f"x.kind = {CLICKS.code} AND EXISTS (SELECT 1 FROM events o"
            f" WHERE o.destination_id = x.destination_id AND o.kind = {CLICKS.code}"
            " AND o.link_id <> x.link_id AND o.ts >= x.ts - ? AND o.ts <= x.ts + ? AND 2 >= ?)"
        )
    # the trap link itself, the rest of its burst, and what the same address did after it
    trap = (
        f"EXISTS (SELECT 1 FROM events t JOIN links l ON l.id = t.link_id AND l.start = {TRAP_START}"
        f" WHERE t.destination_id = x.destination_id AND t.kind = {CLICKS.code}"
        " AND t.ts >= x.ts - ? AND t.ts <= x.ts + ?"  # (bounds on ts: partitions pruned)
        " AND (t.ts >= x.ts - ? OR (t.ip = x.ip AND t.ts <= x.ts)))"
    )
    found = (
        f"SELECT x.id, x.ts, CASE WHEN {too_soon} THEN {v.TOO_SOON} ELSE 0 END"
        f" | CASE WHEN {burst} THEN {v.BURST} ELSE 0 END"
        f" | CASE WHEN {trap} THEN {v.TRAP} ELSE 0 END AS bits"
        f" FROM events x WHERE {examined}"
    )
    reasons = "(e.reasons | r.bits)"
    # a reason and no class from the lists: a scanner's click, a prefetching proxy's open;
    # rows whose reasons and verdict stay as they are are not written
    cur.execute(
        d.sql(
            f"WITH r AS MATERIALIZED ({found})"  # the reasons found once per event
            f" UPDATE events AS e SET reasons = {reasons}, verdict = CASE"
            f" WHEN e.verdict <> 0 OR {reasons} = 0 THEN e.verdict"
            f" WHEN e.kind = {CLICKS.code} THEN {v.SCANNER} ELSE {v.PREFETCH} END"
            f" FROM r WHERE e.id = r.id AND e.ts = r.ts"
            f" AND ({reasons} <> e.reasons OR (e.verdict = 0 AND {reasons} <> 0))"
        ),
        [soon, soon, b, b, rules.burst_links, max(b, rules.window), b, b, *args],
    )


def settle(cur: _Executes, d: Dialect, due: int, bits: int) -> None:
    """Settle the events whose window has passed (ts <= due): their `hfirst` flags and the
    counters of their blocks follow."""
    settling = f"settled <> 1 AND settled = 0 AND ts <= {int(due)}"
    cur.execute("DELETE FROM settling")
    # the earliest settling human event of each pair, where it is earlier than the held one
    cur.execute(f"""
        INSERT INTO settling ({_GROUP}, event_id, ts, held_id, held_ts)
        SELECT b.kind, b.destination_id, b.link_id, b.id, b.ts, h.event_id, h.ts
        FROM (SELECT {_GROUP}, id, ts,
                     row_number() OVER (PARTITION BY {_GROUP} ORDER BY ts, id) AS k
              FROM events WHERE {settling} AND verdict = 0) b
        LEFT JOIN human_firsts h ON h.kind = b.kind AND h.destination_id = b.destination_id
            AND h.link_id = b.link_id
        WHERE b.k = 1 AND (h.event_id IS NULL OR b.ts < h.ts
            OR (b.ts = h.ts AND b.id < h.event_id))""")
    upsert = "ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET"
    won = "CASE WHEN id IN (SELECT event_id FROM settling) THEN 1 ELSE 0 END"
    cur.execute(f"""
        INSERT INTO event_blocks AS t (account_id, kind, block, emailing_id, n, firsts,
            min_ts, max_ts, hfirsts)
        SELECT e.account_id, e.kind, e.id >> {bits}, e.emailing_id, 0, 0, min(e.ts),
            max(e.ts), -count(*)
        FROM events e JOIN settling s ON e.id = s.held_id AND e.ts = s.held_ts
        GROUP BY e.account_id, e.kind, e.id >> {bits}, e.emailing_id
        {upsert} hfirsts = t.hfirsts + excluded.hfirsts""")
    cur.execute("UPDATE events SET hfirst = 0 WHERE (id, ts) IN"
                " (SELECT held_id, held_ts FROM settling WHERE held_id IS NOT NULL)"
                " AND hfirst = 1")  # fmt: skip
    cur.execute(f"""
        INSERT INTO human_firsts ({_GROUP}, event_id, ts)
        SELECT {_GROUP}, event_id, ts FROM settling WHERE true
        ON CONFLICT ({_GROUP}) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts""")
    cur.execute(f"""
        INSERT INTO event_blocks AS t (account_id, kind, block, emailing_id, n, firsts,
            min_ts, max_ts, settled, humans, hfirsts)
        SELECT account_id, kind, id >> {bits}, emailing_id, 0, 0, min(ts), max(ts), count(*),
            sum(CASE WHEN verdict = 0 THEN 1 ELSE 0 END), sum({won})
        FROM events WHERE {settling}
        GROUP BY account_id, kind, id >> {bits}, emailing_id
        {upsert} settled = t.settled + excluded.settled, humans = t.humans + excluded.humans,
            hfirsts = t.hfirsts + excluded.hfirsts""")
    # one write per event: settled, and the new earliest human ones flagged
    cur.execute(f"UPDATE events SET settled = 1, hfirst = {won} WHERE {settling}")


def step(cur: _Executes, d: Dialect, fresh: str, args: Sequence[Any], now: float,
         rules: v.Rules, bits: int, captured: Sequence[Captured] = ()) -> None:  # fmt: skip
    """The three steps for the events that `fresh` (on alias `{a}`) selects; `captured`:
    their values as captured (key, kind, ip, user agent), for `mark`."""
    due = int(now) - rules.window
    mark(cur, d, hints(captured, rules), fresh, args)
    if fresh != NOTHING:
        examine(cur, d, fresh, args, rules)
    settle(cur, d, due, bits)


def due(cur: _Executes, d: Dialect, now: float, rules: v.Rules) -> bool:
    """Whether any event waits to be settled (cheap: a partial index)."""
    rows = cur.execute(
        d.sql("SELECT 1 FROM events WHERE settled <> 1 AND ts <= ? LIMIT 1"),
        [int(now) - rules.window],
    ).fetchall()
    return bool(rows)


# Nothing new: only the due events are examined and settled.
NOTHING = "1 = 0"


def reset(cur: _Executes, d: Dialect, destinations: Sequence[int], bits: int) -> None:
    """Forget the verdicts of these destinations' clicks and opens (for `rescore`): their
    counters are taken back and they are unsettled, all but what capture knew (HEAD)."""
    among = f"destination_id IN ({', '.join('?' for _ in destinations)}) AND kind IN ({_KINDS})"
    cur.execute(
        d.sql(f"""
        INSERT INTO event_blocks AS t (account_id, kind, block, emailing_id, n, firsts,
            min_ts, max_ts, settled, humans, hfirsts)
        SELECT account_id, kind, id >> {bits}, emailing_id, 0, 0, min(ts), max(ts), -count(*),
            -sum(CASE WHEN verdict = 0 THEN 1 ELSE 0 END), -sum(hfirst)
        FROM events WHERE {among} AND settled = 1
        GROUP BY account_id, kind, id >> {bits}, emailing_id
        ON CONFLICT (account_id, kind, block, emailing_id) DO UPDATE SET
            settled = t.settled + excluded.settled, humans = t.humans + excluded.humans,
            hfirsts = t.hfirsts + excluded.hfirsts"""),
        list(destinations),
    )
    cur.execute(
        d.sql(f"UPDATE events SET settled = 0, verdict = 0, reasons = reasons & {v.HEAD},"
              f" hfirst = 0 WHERE {among}"), list(destinations),
    )  # fmt: skip
    cur.execute(d.sql(f"DELETE FROM human_firsts WHERE {among}"), list(destinations))


def stored_sql(d: Dialect, fresh: str) -> str:
    """The stored clicks and opens `fresh` selects, as `hints` reads them (for `rescore`:
    what is kept is all there is)."""
    return d.sql(
        f"SELECT e.key, e.kind, e.ip, e.useragent FROM events e WHERE {fresh.format(a='e')}"
        f" AND e.kind IN ({_KINDS})"
    )
