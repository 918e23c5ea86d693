"""Privacy by configuration: per-account modes for IP addresses and user agents, retention
per kind, and scrubbing stored events to the modes in force.

The modes are applied by the derive step (sqlite_batch.PRIVACY, postgres._private), as the
last change to a batch before its rows go into `events`: whatever else derive computes from
the full address or agent comes before it. Settings apply to events derived after they
change; `scrub` brings stored events in line, and `retention_pass` strips personal fields
from events past their kind's age, both in bounded batches of short transactions.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mailstats.errors import InvalidParameter
from mailstats.kinds import KINDS
from mailstats.store.core import Store

__all__ = ["IP_MODES", "USERAGENT_MODES", "Privacy", "Retention", "get", "ip_prefix", "put",
           "retention_pass", "scrub"]  # fmt: skip

log = logging.getLogger("mailstats.retention")

IP_MODES = ("full", "truncated", "none")
USERAGENT_MODES = ("full", "parsed")
HIT_KINDS = tuple(k.code for k in KINDS.values() if any(c.name == "ip" for c in k.columns))
MAX_DAYS = 36_500
_OCTET = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]")
DAY = 86_400


@dataclass(frozen=True)
class Privacy:
    """An account's settings. `retention`: kind -> days (a kind not named: for ever)."""

    ip: str = "full"
    useragent: str = "full"
    retention: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """What GET ms/settings shows: every kind, `null` meaning for ever."""
        return {
            "ip": self.ip,
            "useragent": self.useragent,
            "retention": {name: self.retention.get(name) for name in KINDS},
        }


def ip_prefix(ip: str | None) -> str | None:
    """The network of an address as `ip=truncated` keeps it: IPv4 /24, IPv6 /48.

    >>> ip_prefix("198.51.100.23"), ip_prefix("2001:db8:abcd:12::1")
    ('198.51.100.0', '2001:db8:abcd::')
    """
    if ip is None:
        return None
    parts = ip.split(".")  # the common case, without ipaddress' cost (derive calls this)
    if len(parts) == 4 and all(_OCTET.fullmatch(part) for part in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None  # not an address: nothing of it is kept
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False).network_address)


def get(store: Store, account_id: int) -> Privacy:
    mark = store.backend.placeholder
    rows = store.backend.fetch(
        f"SELECT ip, useragent, retention FROM account_settings WHERE account_id = {mark}",
        [account_id],
    )
    if not rows:
        return Privacy()
    ip, useragent, retention = rows[0]
    return Privacy(ip, useragent, dict(orjson.loads(retention)))


def put(store: Store, account_id: int, changes: Mapping[str, Any]) -> Privacy:
    """Change some settings (the rest stay); InvalidParameter names the first bad one.

    `retention` takes kind -> days, `null` or "forever", merged into what is set.
    """
    current = get(store, account_id)
    ip, useragent, retention = current.ip, current.useragent, dict(current.retention)
    for name, value in changes.items():
        if name == "ip":
            ip = _mode("ip", value, IP_MODES)
        elif name == "useragent":
            useragent = _mode("useragent", value, USERAGENT_MODES)
        elif name == "retention":
            retention = _retention(value, retention)
        else:
            raise InvalidParameter(
                f"Unknown setting '{name}': settings are ip, useragent and retention"
            )
    mark = store.backend.placeholder
    with store.backend.transaction() as cur:
        cur.execute(
            f"INSERT INTO account_settings (account_id, ip, useragent, retention)"
            f" VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT (account_id) DO UPDATE SET"
            " ip = excluded.ip, useragent = excluded.useragent, retention = excluded.retention",
            [account_id, ip, useragent, orjson.dumps(retention).decode()],
        )
    return Privacy(ip, useragent, retention)


def _mode(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParameter(f"Invalid value for setting '{name}': one of {', '.join(allowed)}")
    return value


def _retention(value: Any, current: dict[str, int]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise InvalidParameter(
            "Invalid value for setting 'retention': an object of kind -> days or null"
        )
    out = dict(current)
    for kind, days in value.items():
        if kind not in KINDS:
            raise InvalidParameter(
                f"Invalid kind '{kind}' in setting 'retention': one of {', '.join(KINDS)}"
            )
        if days is None or days == "forever":
            out.pop(kind, None)
        elif isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= MAX_DAYS:
            out[kind] = days
        else:
            raise InvalidParameter(
                f"Invalid value for setting 'retention.{kind}': whole days from 1 to"
                f" {MAX_DAYS}, or null (for ever)"
            )
    return {kind: out[kind] for kind in KINDS if kind in out}


def _expressions(p: Privacy) -> tuple[str, str, str]:
    """(new ip, new user agent, whether a row changes) as SQL on `events`' columns."""
    ip = {"full": "ip", "truncated": "mailstats_ip_prefix(ip)", "none": "NULL"}[p.ip]
    useragent = "NULL" if p.useragent == "parsed" else "useragent"
    changed = [f"ip IS DISTINCT FROM {ip}"] if p.ip != "full" else []
    if p.useragent == "parsed":
        changed.append("useragent IS NOT NULL")
    return ip, useragent, " OR ".join(changed) or "0 = 1"


ScrubProgress = Callable[[int, int], None]  # (IDs walked, IDs in all)


def scrub(store: Store, account_id: int, *, window: int = 5000,
          progress: ScrubProgress | None = None) -> int:  # fmt: skip
    """Apply the account's ip and useragent modes to its stored events; return how many
    changed. Walks the account's events in windows of `window` IDs, one short transaction
    each, so the indexer and the click path never wait long.
    """
    p = get(store, account_id)
    b, mark = store.backend, store.backend.placeholder
    low, high = b.fetch(f"SELECT min(id), max(id) FROM events WHERE account_id = {mark}",
                        [account_id])[0]  # fmt: skip
    if low is None or (p.ip == "full" and p.useragent == "full"):
        if progress is not None:
            progress(0, 0)
        return 0
    ip, useragent, changed = _expressions(p)
    kinds = ", ".join(str(code) for code in HIT_KINDS)
    sql = (
        f"UPDATE events SET ip = {ip}, useragent = {useragent} WHERE account_id = {mark}"
        f" AND kind IN ({kinds}) AND id >= {mark} AND id < {mark} AND ({changed})"
    )
    done, span, start = 0, int(high) - int(low) + 1, int(low)
    while start <= high:
        with b.transaction() as cur:
            cur.execute(sql, [account_id, start, start + window])
            done += max(0, cur.rowcount)
        start += window
        if progress is not None:
            progress(min(span, start - int(low)), span)
    return done


@dataclass
class Stripped:
    """What one retention pass did."""

    events: int = 0
    destinations: int = 0


def retention_pass(store: Store, now: int | None = None, *, batch: int = 500) -> Stripped:
    """Strip personal fields past their age, every account: the IP and user agent of hits
    older than their kind's retention, then the address, profile and fields of destinations
    whose events are all past it. Each transaction covers one block of event IDs (see
    blocks.py) or `batch` destinations; blocks whose earliest event is younger are skipped.
    """
    from mailstats.store import subjects  # erasure and retention clear destinations alike

    now = int(time.time()) if now is None else now
    done = Stripped()
    rows = store.backend.fetch("SELECT account_id, retention FROM account_settings"
                               " WHERE retention <> '{}' ORDER BY account_id")  # fmt: skip
    for account_id, text in rows:
        cutoffs = {KINDS[k].code: now - days * DAY for k, days in orjson.loads(text).items()}
        for code, cutoff in cutoffs.items():
            if code in HIT_KINDS:
                done.events += _strip_hits(store, int(account_id), code, cutoff)
        done.destinations += subjects.clear_past(store, int(account_id), cutoffs, batch, now)
    return done


def _strip_hits(store: Store, account_id: int, kind: int, cutoff: int) -> int:
    b, mark = store.backend, store.backend.placeholder
    bits = b.block_bits()
    blocks = b.fetch(
        f"SELECT DISTINCT block FROM event_blocks WHERE account_id = {mark} AND kind = {mark}"
        f" AND min_ts < {mark} ORDER BY block",
        [account_id, kind, cutoff],
    )
    sql = (
        f"UPDATE events SET ip = NULL, useragent = NULL WHERE account_id = {mark}"
        f" AND kind = {mark} AND id >= {mark} AND id < {mark} AND ts < {mark}"
        " AND (ip IS NOT NULL OR useragent IS NOT NULL)"
    )
    stripped = 0
    for (block,) in blocks:
        low = int(block) << bits
        with b.transaction() as cur:
            cur.execute(sql, [account_id, kind, low, low + (1 << bits), cutoff])
            stripped += max(0, cur.rowcount)
    return stripped


class Retention:
    """A thread that runs `retention_pass` every `interval` seconds in the process that holds
    the database's indexer role (so one process per database does it)."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mailstats-retention", daemon=True)
        if interval > 0:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.store.backend.indexer_role():
                    continue
                done = retention_pass(self.store)
                self.passes += 1
                if done.events or done.destinations:
                    log.info("retention stripped %d events and %d destinations",
                             done.events, done.destinations)  # fmt: skip
            except Exception as exc:  # the database is away: the next pass tries again
                log.warning("retention deferred: %s", exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
