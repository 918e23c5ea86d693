"""Counting by blocks: totals, statistics and deep offsets from the event_blocks counters.

Every insert adds its events to the counters of their block (a run of 2**block_bits IDs)
per account, kind and emailing, with the block's earliest and latest time. A count is then
a sum over a few thousand counter rows instead of millions of events, and a page at a deep
`start` begins at the block that holds it. A block whose time span straddles a bound of
the filter is counted row by row (an index range of one block); with IDs growing in time,
as they do, only the blocks at the bounds straddle.

Counters know the account, emailing, kind, time and `first` of events, nothing else: a
filter on other fields, or a destination's events (few anyway), takes the plain path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mailstats.kinds import Kind
from mailstats.store import events as ev
from mailstats.store.base import Backend, Scope

# More straddling runs than this (times far out of ID order) and plain counting is cheaper.
MAX_RUNS = 64


def usable(scope: Scope, flt: ev.Filter, kind: Kind | None = None) -> bool:
    """Whether the counters can answer for this scope and filter."""
    if kind is not None and counted(kind, flt) is None:
        return False
    return scope.destination_id is None and not flt.conditions


def counted(kind: Kind, flt: ev.Filter) -> str | None:
    """What a counter row counts of the events that pass `flt` (`bots=`, `unique=`), as an
    expression over event_blocks; None: the counters do not know (earliest machine events)."""
    if flt.bots == "include" or not kind.verdicts:
        if flt.bots == "only":
            return "0"
        return "firsts" if flt.unique else "n"
    if flt.bots == "exclude":
        return "hfirsts" if flt.unique else "humans"
    return None if flt.unique else "settled - humans"


# Counter rows are read in groups of 2**FAN blocks first; only the group that holds a
# page's start, and groups with a straddling block, are read block by block.
FAN = 6


@dataclass(frozen=True)
class Run:
    """Blocks `first` to `last` and their matching events; `count` None: not known yet."""

    first: int
    last: int
    count: int | None


class Counter:
    """Counts of one kind's events in a scope that pass a filter, block by block."""

    def __init__(self, backend: Backend, kind: Kind, scope: Scope, flt: ev.Filter) -> None:
        self.backend = backend
        self.kind = kind
        self.scope = scope
        self.flt = flt
        self.bits = backend.block_bits()
        self.ranged = flt.begin is not None or flt.end is not None

    def _rows(self, shift: int, group: int | None = None) -> list[tuple[int, int, bool]]:
        """(block >> shift, matching events, whether all lie within the time bounds), in
        order; only the blocks of `group` (a block >> FAN) if given."""
        inside = _inside(self.flt, self.backend.placeholder)
        q = self._where()
        q.args[:0] = inside.args  # the select list's placeholders come first
        if group is not None:
            q.add("block >= ?", group << FAN)
            q.add("block < ?", (group + 1) << FAN)
        column = counted(self.kind, self.flt)
        assert column is not None
        key = f"block >> {shift}" if shift else "block"
        sql = (
            f"SELECT {key}, sum({column}), min(CASE WHEN {inside.where} THEN 1 ELSE 0 END)"
            f" FROM event_blocks WHERE {q.where} GROUP BY {key} ORDER BY {key}"
        )
        return [(int(k), int(n), bool(w)) for k, n, w in self.backend.fetch(sql, q.args)]

    def countable(self) -> bool:
        """Whether few enough blocks straddle a bound for counting by blocks to pay."""
        if not self.ranged:
            return True
        inside = _inside(self.flt, self.backend.placeholder)
        q = self._where()
        q.add(f"NOT ({inside.where})", *inside.args)
        sql = f"SELECT count(*) FROM event_blocks WHERE {q.where}"
        return int(self.backend.fetch(sql, q.args)[0][0]) <= MAX_RUNS

    def upper(self) -> int:
        """An ID above every matching event: the end of the last block that may hold one."""
        q = self._where()
        sql = f"SELECT max(block) FROM event_blocks WHERE {q.where}"
        highest = self.backend.fetch(sql, q.args)[0][0]
        return (int(highest if highest is not None else -1) + 1) << self.bits

    def _where(self) -> ev.Query:
        """Counter rows of the scope and kind whose time span meets the filter's."""
        q = ev.Query(self.backend.placeholder, self.backend.like)
        q.add("account_id = ?", self.scope.account_id)
        if self.scope.emailing_id is not None:
            q.add("emailing_id = ?", self.scope.emailing_id)
        q.add("kind = ?", self.kind.code)
        _overlap(q, self.flt)
        return q

    def _blocks(self, group: int) -> Iterator[Run]:
        """The group's blocks with their counts; straddling neighbours counted as one run."""
        runs: list[Run] = []
        for block, count, whole in self._rows(0, group):
            if whole:
                runs.append(Run(block, block, count))
            elif runs and runs[-1].count is None:
                runs[-1] = Run(runs[-1].first, block, None)
            else:
                runs.append(Run(block, block, None))
        for run in runs:
            yield run if run.count is not None else self._count(run)

    def _count(self, run: Run) -> Run:
        """The run with its matching events counted row by row (an index range of IDs)."""
        b = self.backend
        q = ev.where(self.kind, self.scope, self.flt, b.placeholder, b.like, f"{b.unindexed}e.ts")
        q.add("e.id >= ?", run.first << self.bits)
        q.add("e.id < ?", (run.last + 1) << self.bits)
        count = int(self.backend.fetch(ev.count_sql(self.kind, q), q.args)[0][0])
        return Run(run.first, run.last, count)

    def _groups(self) -> Iterator[tuple[int, int | None]]:
        """(group, its count if every block in it lies within the bounds, else None)."""
        for group, count, whole in self._rows(FAN):
            yield group, count if whole else None

    def total(self) -> int:
        total = 0
        for group, count in self._groups():
            if count is None:
                count = sum(run.count or 0 for run in self._blocks(group))
            total += count
        return total

    def locate(self, start: int) -> tuple[int, int] | None:
        """(lowest ID of the block or run holding match number `start`, matches before it).

        None when there are no more than `start` matches.
        """
        before = 0
        for group, count in self._groups():
            if count is not None and before + count <= start:
                before += count
                continue
            for run in self._blocks(group):
                assert run.count is not None
                if before + run.count > start:
                    return run.first << self.bits, before
                before += run.count
        return None


# Per kind: (events, firsts, settled, humans, hfirsts), as event_blocks counts them.
Sums = tuple[int, int, int, int, int]
SUMS = "sum(n), sum(firsts), sum(settled), sum(humans), sum(hfirsts)"
# The same, counted from events rows `e`.
ROW_SUMS = (
    "count(*), sum(e.first), sum(CASE WHEN e.kind IN ({k}) THEN e.settled ELSE 0 END),"
    " sum(CASE WHEN e.kind IN ({k}) AND e.settled = 1 AND e.verdict = 0 THEN 1 ELSE 0 END),"
    " sum(e.hfirst)"
)


def row_sums(verdict_kinds: str) -> str:
    return ROW_SUMS.format(k=verdict_kinds)


def add(a: Sums | None, b: tuple[object, ...]) -> Sums:
    """Sums plus one row of sums (NULLs as 0)."""
    base = a or (0, 0, 0, 0, 0)
    x = [int(str(v)) if v is not None else 0 for v in b]
    return (base[0] + x[0], base[1] + x[1], base[2] + x[2], base[3] + x[3], base[4] + x[4])


@dataclass
class Statistics:
    counts: dict[int, Sums]  # kind code -> its sums
    retries: tuple[int, int] | None  # (deliveries after a retry, their destinations)


def statistics(
    backend: Backend, scope: Scope, begin: int | None, end: int | None, verdict_kinds: str
) -> Statistics | None:
    """An emailing's counts between the bounds; None: count rows instead.

    Retries come from the counters only without bounds: their `unique` counts destinations,
    and a destination's retries may lie on both sides of a bound.
    """
    mark = backend.placeholder
    flt = ev.Filter(begin=begin, end=end)
    base = ev.Query(mark, backend.like)
    assert scope.emailing_id is not None and scope.destination_id is None
    base.add("emailing_id = ?", scope.emailing_id)
    base.add("account_id = ?", scope.account_id)
    _overlap(base, flt)
    inside = _inside(flt, mark)
    ranged = begin is not None or end is not None
    runs: list[tuple[int, int]] = []
    if ranged:
        straddling = backend.fetch(
            f"SELECT DISTINCT block FROM event_blocks WHERE {base.where}"
            f" AND NOT ({inside.where}) ORDER BY block",
            [*base.args, *inside.args],
        )
        for (block,) in straddling:
            if runs and runs[-1][1] == block - 1:
                runs[-1] = (runs[-1][0], block)
            else:
                runs.append((block, block))
        if len(runs) > MAX_RUNS:
            return None
    whole = ev.Query(mark, backend.like, list(base.clauses), list(base.args))
    for first, last in runs:
        whole.add("NOT (block >= ? AND block <= ?)", first, last)
    if ranged:
        whole.add(inside.where, *inside.args)
    counts: dict[int, Sums] = {}
    retries = [0, 0]
    sql = (
        f"SELECT kind, {SUMS}, sum(retries), sum(retried)"
        f" FROM event_blocks WHERE {whole.where} GROUP BY kind"
    )
    for kind, *sums, retry, retried in backend.fetch(sql, whole.args):
        counts[int(kind)] = add(None, tuple(sums))
        retries[0] += int(retry)
        retries[1] += int(retried)
    bits = backend.block_bits()
    for first, last in runs:
        q = ev.Query(mark, backend.like)
        # every kind of one range of IDs: read by that range, whatever the planner guesses
        q.add(f"{backend.unindexed}e.emailing_id = ?", scope.emailing_id)
        q.add(f"{backend.unindexed}e.account_id = ?", scope.account_id)
        if begin is not None:
            q.add(f"{backend.unindexed}e.ts >= ?", begin)
        if end is not None:
            q.add(f"{backend.unindexed}e.ts <= ?", end)
        q.add("e.id >= ?", first << bits)
        q.add("e.id < ?", (last + 1) << bits)
        sql = (
            f"SELECT e.kind, {row_sums(verdict_kinds)} FROM events e WHERE {q.where}"
            " GROUP BY e.kind"
        )
        for kind, *sums in backend.fetch(sql, q.args):
            counts[int(kind)] = add(counts.get(int(kind)), tuple(sums))
    return Statistics(counts, None if ranged else (retries[0], retries[1]))


def id_span(backend: Backend, kind: Kind, scope: Scope, flt: ev.Filter) -> tuple[int, int]:
    """[low, high): the IDs of every block whose time span meets the filter's bounds.

    Events carry no index on time: a time range is read as this range of IDs (with IDs
    growing in time, it is about the range's own events), then filtered on ts.
    """
    q = ev.Query(backend.placeholder, backend.like)
    q.add("account_id = ?", scope.account_id)
    if scope.emailing_id is not None:
        q.add("emailing_id = ?", scope.emailing_id)
    q.add("kind = ?", kind.code)
    _overlap(q, flt)
    low, high = backend.fetch(f"SELECT min(block), max(block) FROM event_blocks WHERE {q.where}",
                              q.args)[0]  # fmt: skip
    if low is None:
        return 0, 0
    bits = backend.block_bits()
    return int(low) << bits, (int(high) + 1) << bits


def _overlap(q: ev.Query, flt: ev.Filter) -> None:
    """Only counter rows whose time span meets the filter's."""
    if flt.begin is not None:
        q.add("max_ts >= ?", flt.begin)
    if flt.end is not None:
        q.add("min_ts <= ?", flt.end)


def _inside(flt: ev.Filter, mark: str) -> ev.Query:
    """A counter row whose whole time span lies within the filter's bounds ("1 = 1" if any)."""
    q = ev.Query(mark, "LIKE")
    if flt.begin is not None:
        q.add("min_ts >= ?", flt.begin)
    if flt.end is not None:
        q.add("max_ts <= ?", flt.end)
    if not q.clauses:
        q.add("1 = 1")
    return q
