"""Measurement: the indexer's throughput with geo=network against geo=off, in the same run.

Clicks from public addresses are captured and derived in rounds of alternating modes, in the
order off, network, network, off, ... so that a drift of the machine or of the growing tables
weighs on both alike; the figure is the median of the rounds' ratios, each a round of
`network` against the `off` round next to it. The addresses are hosts in a few thousand /24
and /48 prefixes, as recipients' providers and mail proxies cluster them, and the lookup
cache lives through the rounds as it does in a server (one uncounted round warms it; the
data is loaded before). The clicks are from just before the verdict window (#12), as a
steady stream is once it has run for a minute: each batch examines and settles its own
clicks. Clicks from within the window would all stay unsettled through the run, and every
batch would examine again every earlier click of the same messages, a cost that grows round
after round and has nothing to do with geo. `geo_cold` (no goal) is the worst case: a fresh
cache and every address new, each in a prefix of its own.

Standalone: .venv/bin/python bench/geo.py [--backend sqlite|postgres] [--events N]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

from dataset import DataSet
from results import Goal, Result
from scale import Scale

from mailstats.geo import OFF, Geo
from mailstats.kinds import CLICKS
from mailstats.store import Event, Store
from mailstats.store.derive import BATCH
from mailstats.verdicts import Rules

GOAL = Goal("ratio", ">=", 0.9)
ROUNDS = 7  # of each mode, alternating, after a warm-up of 4 batches
WINDOW = Rules().window  # the verdicts' (#12): clicks from before it settle in their batch
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0"


_DATA = Geo()


def _public(rng: random.Random, version: int) -> int:
    """A random address in use: global, and placed in a country by the bundled data."""
    while True:
        if version == 4:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(
                rng.getrandbits(32)
            )
        else:  # within the /12s the registries give out from
            region = rng.choice((0x2A0, 0x240, 0x260, 0x280))
            address = ipaddress.IPv6Address((region << 116) | rng.getrandbits(116))
        if address.is_global and _DATA.lookup(str(address)).country:
            return int(address)


def addresses(count: int, seed: int, clustered: bool = True) -> list[str]:
    """Click addresses, 70% IPv4: hosts in the same 4,000 /24s and 1,500 /48s (the
    recipients' providers) whatever the seed, or each one new."""
    rng = random.Random(seed)
    if not clustered:
        return [str(ipaddress.ip_address(_public(rng, 4 if rng.random() < 0.7 else 6)))
                for _ in range(count)]  # fmt: skip
    pools = random.Random(0)
    v4 = [_public(pools, 4) & ~0xFF for _ in range(4000)]
    v6 = [_public(pools, 6) & ~((1 << 80) - 1) for _ in range(1500)]
    out = []
    for _ in range(count):
        if rng.random() < 0.7:
            out.append(str(ipaddress.IPv4Address(rng.choice(v4) | rng.randrange(256))))
        else:
            out.append(str(ipaddress.IPv6Address(rng.choice(v6) | rng.getrandbits(64))))
    return out


def _clicks(data: DataSet, ips: list[str], seed: int) -> list[Event]:
    rng, now = random.Random(seed), int(time.time()) - WINDOW - 1
    out = []
    for ip in ips:
        flow = rng.choice(data.flows)
        dest = flow.first_dest + rng.randrange(flow.dests)
        out.append(Event(CLICKS, os.urandom(16), now - rng.randrange(60), 0, 0, dest,
                         rng.choice(flow.links), (ip, UA)))  # fmt: skip
    return out


def _derive_rate(store: Store, events: list[Event], geo: Geo) -> float:
    for at in range(0, len(events), 20):
        store.capture_events(events[at : at + 20])
    store.backend.geo = geo
    t0 = time.perf_counter()
    while store.derive(BATCH).taken:
        pass
    return len(events) / (time.perf_counter() - t0)


def measure(store: Store, data: DataSet, scale: Scale, backend: str,
            log: Callable[[str], None] = print) -> list[Result]:  # fmt: skip
    """The median of ROUNDS ratios of geo=network to the geo=off round beside it (in the
    order off, network, network, off, ...), shown as the median network rate against that
    rate over the median ratio."""
    if not store.backend.indexer_role():
        raise RuntimeError("another process holds the indexer role")
    per_round = max(2 * BATCH, scale.index_events // (2 * ROUNDS))
    geo = Geo()
    rates: dict[str, list[float]] = {"off": [], "network": []}
    ratios: list[float] = []
    try:
        warm = _derive_rate(store, _clicks(data, addresses(4 * BATCH, seed=99), 99), geo)
        log(f"  warm-up round, geo=network: {warm:,.0f} events/s")
        for n in range(ROUNDS):
            pair: dict[str, float] = {}
            for mode in ("off", "network") if n % 2 == 0 else ("network", "off"):
                seed = n if mode == "off" else 100 + n
                ips = addresses(per_round, seed=seed)
                pair[mode] = _derive_rate(
                    store, _clicks(data, ips, seed), OFF if mode == "off" else geo
                )
                rates[mode].append(pair[mode])
            ratios.append(pair["network"] / pair["off"])
            log(f"  round {n + 1}: geo=off {pair['off']:,.0f} events/s,"
                f" geo=network {pair['network']:,.0f} events/s, ratio {ratios[-1]:.3f}")  # fmt: skip
        ips = addresses(per_round, seed=200, clustered=False)
        cold = _derive_rate(store, _clicks(data, ips, 200), Geo())
    finally:
        store.backend.geo = OFF
    off, network = statistics.median(rates["off"]), statistics.median(rates["network"])
    ratio = statistics.median(ratios)
    note = (f"{ROUNDS} rounds of {per_round:,} clicks per mode (off, network, network, off, ...),"
            f" the median of the rounds' ratios ({min(ratios):.2f} to {max(ratios):.2f}); value:"
            f" the median network rate; ceiling: that rate over the median ratio (median off"
            f" rate {off:,.0f}), same run; after a warm-up"
            f" of {4 * BATCH:,} clicks; hosts in 4,000 /24s and 1,500 /48s (70% IPv4)")  # fmt: skip
    cold_note = (f"{per_round:,} clicks, a fresh cache, every address new (no prefix repeats);"
                 f" ceiling: the median geo=off rate")  # fmt: skip
    return [
        Result("geo", backend, network, "events/s", network / ratio, GOAL, note),
        Result("geo_cold", backend, cold, "events/s", off, None, cold_note),
    ]


def main(argv: list[str]) -> int:
    from databases import database, postgres_available
    from dataset import build
    from results import emit, table
    from scale import QUICK

    from mailstats.store import open_store

    parser = argparse.ArgumentParser(prog="bench/geo.py", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=QUICK.index_events)
    args = parser.parse_args(argv)
    db = database(args.backend, "geo")
    if args.backend == "postgres" and (why := postgres_available()):
        print(f"postgres unavailable: {why}", file=sys.stderr)
        return 1
    db.create()
    results: list[Result] = []
    try:
        store = open_store(db.url)
        try:
            log = lambda m: print(m, file=sys.stderr)  # noqa: E731
            data = build(store, 20_000, 30, 20_000, log)
            scale = Scale("geo", clicks=20_000, index_events=args.events)
            for result in measure(store, data, scale, args.backend, log):
                emit(result, results)
        finally:
            store.close()
    finally:
        db.drop()
    print(table(results))
    return 0 if all(r.met is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
