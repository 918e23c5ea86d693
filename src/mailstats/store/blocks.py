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


def usable(scope: Scope, flt: ev.Filter) -> bool:
    """Whether the counters can answer for this scope and filter."""
    return scope.destination_id is None and not flt.conditions


@dataclass(frozen=True)
class Run:
    """Consecutive blocks and the matching events in them; `count` None: not known yet."""

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
        self._runs: list[Run] | None = None

    def runs(self) -> list[Run]:
        """The blocks with matching events in ID order; straddling neighbours share a run."""
        if self._runs is not None:
            return self._runs
        flt, mark = self.flt, self.backend.placeholder
        inside = _inside(flt, mark)
        q = ev.Query(mark, self.backend.like)
        q.args.extend(inside.args)  # the select list's placeholders come first
        q.add("account_id = ?", self.scope.account_id)
        if self.scope.emailing_id is not None:
            q.add("emailing_id = ?", self.scope.emailing_id)
        q.add("kind = ?", self.kind.code)
        _overlap(q, flt)
        column = "firsts" if flt.unique else "n"
        sql = (
            f"SELECT block, sum({column}), min(CASE WHEN {inside.where} THEN 1 ELSE 0 END)"
            f" FROM event_blocks WHERE {q.where} GROUP BY block ORDER BY block"
        )
        runs: list[Run] = []
        for block, count, whole in self.backend.fetch(sql, q.args):
            if whole:
                runs.append(Run(block, block, int(count)))
            elif runs and runs[-1].count is None:
                runs[-1] = Run(runs[-1].first, block, None)
            else:
                runs.append(Run(block, block, None))
        self._runs = runs
        return runs

    def countable(self) -> bool:
        """Whether few enough blocks straddle a bound for counting by blocks to pay."""
        return sum(1 for r in self.runs() if r.count is None) <= MAX_RUNS

    def counted(self) -> Iterator[Run]:
        """The runs with their counts, the straddling ones counted row by row when reached."""
        for run in self.runs():
            if run.count is not None:
                yield run
                continue
            q = ev.where(
                self.kind, self.scope, self.flt, self.backend.placeholder, self.backend.like
            )
            q.add("e.id >= ?", run.first << self.bits)
            q.add("e.id < ?", (run.last + 1) << self.bits)
            count = int(self.backend.fetch(ev.count_sql(self.kind, q), q.args)[0][0])
            yield Run(run.first, run.last, count)

    def total(self) -> int:
        return sum(run.count or 0 for run in self.counted())

    def locate(self, start: int) -> tuple[int, int] | None:
        """(lowest ID of the run holding match number `start`, matches before that run).

        None when there are no more than `start` matches.
        """
        before = 0
        for run in self.counted():
            assert run.count is not None
            if before + run.count > start:
                return run.first << self.bits, before
            before += run.count
        return None


@dataclass
class Statistics:
    counts: dict[int, tuple[int, int]]  # kind code -> (events, firsts)
    retries: tuple[int, int] | None  # (deliveries after a retry, their destinations)


def statistics(
    backend: Backend, scope: Scope, begin: int | None, end: int | None
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
    counts: dict[int, tuple[int, int]] = {}
    retries = [0, 0]
    sql = (
        "SELECT kind, sum(n), sum(firsts), sum(retries), sum(retried)"
        f" FROM event_blocks WHERE {whole.where} GROUP BY kind"
    )
    for kind, n, firsts, retry, retried in backend.fetch(sql, whole.args):
        counts[int(kind)] = (int(n), int(firsts))
        retries[0] += int(retry)
        retries[1] += int(retried)
    bits = backend.block_bits()
    for first, last in runs:
        q = ev.Query(mark, backend.like)
        q.add("e.emailing_id = ?", scope.emailing_id)
        q.add("e.account_id = ?", scope.account_id)
        if begin is not None:
            q.add("e.ts >= ?", begin)
        if end is not None:
            q.add("e.ts <= ?", end)
        q.add("e.id >= ?", first << bits)
        q.add("e.id < ?", (last + 1) << bits)
        sql = f"SELECT e.kind, count(*), sum(e.first) FROM events e WHERE {q.where} GROUP BY e.kind"
        for kind, n, firsts in backend.fetch(sql, q.args):
            had = counts.get(int(kind), (0, 0))
            counts[int(kind)] = (had[0] + int(n), had[1] + int(firsts or 0))
    return Statistics(counts, None if ranged else (retries[0], retries[1]))


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
