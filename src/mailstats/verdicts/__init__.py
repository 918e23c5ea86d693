"""Machine events: the verdicts and reasons of clicks and opens, and the rules behind them.

Pure functions and data files: the store applies these rules set-based in its derive step
(store/verdicts.py); the corpus tests and the bench use them without a database.
A verdict is `human` or a machine class; reasons are bits, so a verdict can name several.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from crawlerdetect import CrawlerDetect

__all__ = [
    "CRAWLER",
    "HUMAN",
    "PREFETCH",
    "REASONS",
    "SCANNER",
    "VERDICTS",
    "Agents",
    "Networks",
    "Rules",
    "reason_bits",
    "reason_names",
]

# Verdict codes as stored; their names as the API shows them.
HUMAN, SCANNER, PREFETCH, CRAWLER = 0, 1, 2, 3
VERDICTS = ("human", "scanner", "prefetch", "crawler")
_CLASSES = {name: code for code, name in enumerate(VERDICTS)}

# Reason bits as stored, in the order the API lists them.
REASONS = {
    "too-soon": 1,  # within `too_soon` seconds of the delivery or of sending
    "burst": 2,  # several links of one message followed within `burst_seconds`
    "trap": 4,  # the invisible trap link, or the rest of the burst that followed it
    "head": 8,  # a HEAD or prefetch request
    "network": 16,  # from a range of a known scanning service or image proxy
    "agent": 32,  # a crawler's, previewer's or scanner's user agent
}
TOO_SOON, BURST, TRAP, HEAD, NETWORK, AGENT = REASONS.values()


def reason_names(bits: int) -> list[str]:
    """The names of the reasons in `bits`.

    >>> reason_names(BURST | TRAP)
    ['burst', 'trap']
    """
    return [name for name, bit in REASONS.items() if bits & bit]


def reason_bits(names: list[str]) -> int:
    bits = 0
    for name in names:
        bits |= REASONS[name]
    return bits


def _lines(text: str) -> list[tuple[str, str]]:
    """(class, value) per line of a data file; comments and blank lines skipped."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        name, _, value = line.partition(" ")
        if name not in _CLASSES or not value.strip():
            raise ValueError(f"line {number}: expected 'CLASS VALUE', got {raw!r}")
        out.append((name, value.strip()))
    return out


def _data(name: str, path: str) -> str:
    if path:
        return Path(path).read_text(encoding="utf-8")
    return (resources.files("mailstats.verdicts") / "data" / name).read_text(encoding="utf-8")


class Networks:
    """Address ranges of known machines, each with its class, searched by bisection."""

    def __init__(self, text: str) -> None:
        spans: dict[int, list[tuple[int, int, int]]] = {4: [], 6: []}
        for name, value in _lines(text):
            net = ipaddress.ip_network(value, strict=False)
            first, last = int(net.network_address), int(net.broadcast_address)
            spans[net.version].append((first, last, _CLASSES[name]))
        self._spans = {v: sorted(s) for v, s in spans.items()}
        self._starts = {v: [s[0] for s in spans] for v, spans in self._spans.items()}

    @classmethod
    def load(cls, path: str = "") -> Networks:
        """The shipped list, or the file at `path` instead."""
        return cls(_data("networks.txt", path))

    def lookup(self, address: str) -> int | None:
        """The class of the range holding `address`, None for none (or not an address).

        >>> Networks("prefetch 17.0.0.0/8").lookup("17.58.1.2") == PREFETCH
        True
        """
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value, spans = int(ip), self._spans[ip.version]
        at = bisect.bisect_right(self._starts[ip.version], value) - 1
        # ranges may nest: look back over those that start before the address
        while at >= 0:
            first, last, code = spans[at]
            if first <= value <= last:
                return code
            at -= 1
            if value - first > 2**64:  # no range is that wide: stop looking back
                break
        return None


class Agents:
    """User agents of known machines: the data file's patterns first (`human` ones are
    people's clients and proxies that crawlerdetect would name), then crawlerdetect's list."""

    def __init__(self, text: str) -> None:
        self._patterns = [(re.compile(p, re.IGNORECASE), _CLASSES[n]) for n, p in _lines(text)]
        self._detect = CrawlerDetect()
        self._lock = threading.Lock()  # CrawlerDetect keeps the last match on itself
        self.lookup = functools.lru_cache(maxsize=65536)(self._lookup)

    @classmethod
    def load(cls, path: str = "") -> Agents:
        return cls(_data("agents.txt", path))

    def _lookup(self, useragent: str) -> int | None:
        """The machine class of a user agent, None for a person's (or an unknown one's)."""
        if not useragent.strip():
            return SCANNER  # every browser and mail client sends one
        for pattern, code in self._patterns:
            if pattern.search(useragent):
                return None if code == HUMAN else code
        with self._lock:
            if self._detect.isCrawler(useragent):
                return CRAWLER
        return None


@dataclass(frozen=True)
class Rules:
    """The thresholds and lists the derive step applies (settings `verdict_*`)."""

    window: int = 60  # seconds after which an event's verdict is settled
    too_soon: int = 10  # seconds after the delivery or the sending: too soon for a person
    burst_seconds: int = 1  # links followed at most this far apart belong to one burst
    burst_links: int = 3  # ... and this many distinct links of one message make a burst
    networks: Networks = field(default_factory=Networks.load, compare=False)
    agents: Agents = field(default_factory=Agents.load, compare=False)

    def classify(self, click: bool, ip: str | None, useragent: str | None) -> tuple[int, int]:
        """(reasons, verdict) that an address and user agent give on their own. Image proxy
        ranges (`prefetch`) count for opens only: a person may click through them.

        >>> Rules().classify(False, "17.1.2.3", "Mozilla/5.0") == (NETWORK, PREFETCH)
        True
        """
        reasons, verdict = 0, HUMAN
        agent = self.agents.lookup(useragent or "")
        if agent is not None:
            reasons, verdict = AGENT, agent
        network = self.networks.lookup(ip or "")
        if network is not None and not (click and network == PREFETCH):
            reasons |= NETWORK
            verdict = verdict or network
        return reasons, verdict
