"""Addresses and user agents for the data set: the demo generator's lists when it has them."""

from __future__ import annotations

import ipaddress
import random

from flows import Pools

from mailstats.tracking.devices import device

_FALLBACK_OPENS = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)",
)
_FALLBACK_CLICKS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
)


def _user_agents() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(open agents, click agents), each repeated by its persona's weight."""
    try:
        from mailstats.demo_data import PERSONAS
    except ImportError:
        return _FALLBACK_OPENS, _FALLBACK_CLICKS
    opens = tuple(ua for p in PERSONAS for ua in p.opens for _ in range(p.weight))
    clicks = tuple(ua for p in PERSONAS for ua in p.clicks for _ in range(p.weight))
    return opens, clicks


def _ips(rng: random.Random, count: int) -> tuple[str, ...]:
    out = []
    for _ in range(count):
        if rng.random() < 0.25:
            out.append(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)).compressed)
        else:
            out.append(
                f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"
            )
    return tuple(out)


def make_pools(seed: int) -> Pools:
    rng = random.Random(seed)
    opens, clicks = (list(uas) for uas in _user_agents())
    rng.shuffle(opens)
    rng.shuffle(clicks)
    devices = tuple(device(ua) for ua in opens)
    return Pools(_ips(rng, 4093), tuple(opens), devices, tuple(clicks))
