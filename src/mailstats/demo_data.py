"""Realistic demo data: newsletters, their recipients and all six kinds of event, seeded.

`mailstats demo` calls `generate`; benchmarks call it too, to fill a database of any size.
Proportions follow a typical retail newsletter: ~3% bounces, ~40% opens, ~8-15% of openers
clicking, 0.3% unsubscribes, 0.05% complaints, and a few mail-security scanners that open
everything and follow every link seconds after delivery.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, NamedTuple, Protocol

import orjson

from mailstats.kinds import KINDS, Kind
from mailstats.reports.classify import reason
from mailstats.store import Account, Event, Store
from mailstats.tracking.devices import hit_values
from mailstats.tracking.render import extract_links

__all__ = ["EmailingSummary", "Options", "Progress", "Summary", "generate"]

HOUR = 3600
DAY = 24 * HOUR
CLICKS, IMPRESSIONS, DELIVERIES = KINDS["clicks"], KINDS["impressions"], KINDS["deliveries"]
ERRORS, ABUSES, UNSUBSCRIBES = KINDS["errors"], KINDS["abuses"], KINDS["unsubscribes"]


@dataclass(frozen=True)
class Options:
    emailings: int = 6
    destinations: int = 20_000  # per emailing
    days: int = 42  # the first emailing went out this long ago, the last about a day ago
    seed: int | None = None
    now: int | None = None  # the end of the data, UTC epoch seconds; default: the clock
    batch: int = 4000  # events per write, destinations per registration


class Progress(Protocol):
    """Called as work goes on with recipients registered and events written so far."""

    def __call__(self, recipients: int, events: int) -> None: ...


@dataclass
class EmailingSummary:
    id: int
    subject: str
    sent: int
    destinations: int
    counts: Counter[str] = field(default_factory=Counter)  # events per kind
    uniques: Counter[str] = field(default_factory=Counter)  # destinations per kind


@dataclass
class Summary:
    emailings: list[EmailingSummary]
    stored: int  # events written (all of them, unless a key was already there)
    seconds: float

    @property
    def totals(self) -> Counter[str]:
        return sum((e.counts for e in self.emailings), Counter())


# -- the audience ----------------------------------------------------------------------

# fmt: off
CHROME = "Chrome/131.0.0.0 Safari/537.36"
UA_CHROME_WIN = f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) {CHROME}"
UA_CHROME_MAC = f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) {CHROME}"
UA_CHROME_LINUX = f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) {CHROME}"
UA_EDGE = f"{UA_CHROME_WIN} Edg/131.0.2903.70"
UA_FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
UA_FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
UA_FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
UA_SAFARI_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
UA_APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
UA_IPHONE_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
UA_IPHONE_SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
UA_IPAD_MAIL = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
UA_IPAD_SAFARI = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
UA_ANDROID_CHROME = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
UA_ANDROID_SAMSUNG = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"
UA_ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
UA_GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
UA_YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
UA_OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)"
UA_OUTLOOK_OLD = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
UA_THUNDERBIRD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
SCANNERS = (  # link-checking gateways mostly pass for a browser
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
)


class Persona(NamedTuple):
    """How one group of recipients reads mail: what fetches the pixel, what follows links."""

    weight: int
    opens: tuple[str, ...]
    clicks: tuple[str, ...]
    proxy: tuple[int, int] | None = None  # opens come from 198.51.100.[a, b] (image proxies)
    ipv6: float = 0.2  # share of recipients on IPv6
    roaming: bool = False  # a new address now and then (mobile networks)


PERSONAS = (
    Persona(24, (UA_GMAIL_PROXY,), (UA_CHROME_WIN, UA_CHROME_MAC, UA_ANDROID_CHROME), (1, 99), 0.3),
    Persona(20, (UA_IPHONE_MAIL,), (UA_IPHONE_SAFARI,), ipv6=0.5, roaming=True),
    Persona(4, (UA_IPAD_MAIL,), (UA_IPAD_SAFARI,), ipv6=0.4),
    Persona(9, (UA_APPLE_MAIL,), (UA_SAFARI_MAC, UA_CHROME_MAC, UA_FIREFOX_MAC), ipv6=0.3),
    Persona(13, (UA_OUTLOOK, UA_OUTLOOK, UA_OUTLOOK_OLD), (UA_EDGE, UA_CHROME_WIN), ipv6=0.1),
    Persona(10, (UA_CHROME_WIN, UA_EDGE, UA_FIREFOX_WIN, UA_CHROME_MAC, UA_FIREFOX_LINUX, UA_CHROME_LINUX), (), ipv6=0.25),
    Persona(11, (UA_ANDROID_CHROME, UA_ANDROID_SAMSUNG), (), ipv6=0.5, roaming=True),
    Persona(2, (UA_ANDROID_TABLET,), (), ipv6=0.3),
    Persona(5, (UA_YAHOO_PROXY,), (UA_CHROME_WIN, UA_IPHONE_SAFARI), (100, 149), 0.1),
    Persona(2, (UA_THUNDERBIRD,), (UA_FIREFOX_WIN, UA_FIREFOX_LINUX), ipv6=0.3),
)
PERSONA_WEIGHTS = [p.weight for p in PERSONAS]

FIRST_NAMES = (
    "Anna", "Bram", "Charlotte", "Daan", "Emma", "Finn", "Hanna", "Jesse", "Julia", "Lars",
    "Lotte", "Luuk", "Maria", "Max", "Noah", "Olivia", "Pieter", "Sanne", "Sophie", "Thomas",
    "Tim", "Eva", "Ruben", "Fleur", "Milan", "Nina", "Sem", "Zoë", "Liam", "Mila", "Oliver",
    "Amelia", "James", "Grace", "Henry", "Chloé", "Lucas", "Léa", "Jonas", "Mia",
)
LAST_NAMES = (
    "de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer",
    "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Dijk", "Dekker", "Smith",
    "Jones", "Taylor", "Brown", "Wilson", "Evans", "Müller", "Schmidt", "Schneider", "Fischer",
    "Dubois", "Martin", "Bernard", "Rossi",
)
# (domain, weight, share of recipients behind a corporate mail-security gateway)
DOMAINS = (
    ("example.com", 30, 0.0), ("example.net", 20, 0.0), ("example.org", 15, 0.0),
    ("mail.example", 12, 0.0), ("inbox.example", 8, 0.0), ("fabrikam.example", 6, 0.05),
    ("globex.example", 5, 0.05), ("initech.example", 4, 0.05),
)

HARD_BOUNCES = (
    ("5.1.1", "550", "550 5.1.1 <{email}>: Recipient address rejected: User unknown in virtual mailbox table"),
    ("5.1.1", "550", "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces."),
    ("5.1.10", "550", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    ("5.2.1", "550", "550 5.2.1 <{email}>: mailbox is disabled"),
    ("5.7.1", "554", "554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.example"),
)
SOFT_BOUNCES = (
    ("4.2.2", "452", "452 4.2.2 <{email}>: Mailbox full"),
    ("4.2.2", "552", "552 4.2.2 Mailbox full: the recipient's mailbox is over its storage quota"),
    ("4.7.1", "451", "451 4.7.1 <{email}>: Greylisted, please try again in 300 seconds"),
    ("4.4.1", "", "connect to mx.{domain}[203.0.113.25]:25: Connection timed out"),
    ("4.7.0", "421", "421 4.7.0 Try again later, closing connection."),
)
# fmt: on


@dataclass
class Person:
    profile: str
    subprofile: str | None
    email: str
    fields: dict[str, str]
    persona: Persona
    open_ua: str
    click_ua: str
    ip: str
    engagement: float  # chance of opening an average emailing
    bad_address: int | None  # index into HARD_BOUNCES: every send to it bounces
    scanned: bool  # a security gateway fetches everything in the message first


def _ipv4(rng: random.Random) -> str:
    return f"{rng.choice(('192.0.2', '203.0.113'))}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    return ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)).compressed


def _person(rng: random.Random, number: int, taken: set[str]) -> Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domain, _, gateway = rng.choices(DOMAINS, weights=[d[1] for d in DOMAINS])[0]
    local = f"{first}.{last}".lower().replace(" ", "").replace("ë", "e").replace("é", "e")
    local = local.replace("ü", "ue")
    email = f"{local}@{domain}"
    while email in taken:
        email = f"{local}{rng.randint(1, 999)}@{domain}"
    taken.add(email)
    persona = rng.choices(PERSONAS, weights=PERSONA_WEIGHTS)[0]
    profile = str(1000 + number * 3 + rng.randint(0, 2))
    subprofile = str(50000 + number) if rng.random() < 0.2 else None
    engagement = rng.choices((0.05, 0.35, 0.75, 0.95), weights=(35, 30, 25, 10))[0]
    bad = rng.choice((0, 0, 1, 1, 2, 3)) if rng.random() < 0.012 else None
    return Person(
        profile, subprofile, email,
        {"customerid": f"NW{700000 + number * 7}", "firstname": first, "lastname": last},
        persona, rng.choice(persona.opens), rng.choice(persona.clicks or persona.opens),
        _ipv6(rng) if rng.random() < persona.ipv6 else _ipv4(rng),
        engagement, bad, rng.random() < gateway,
    )  # fmt: skip


# -- the newsletters -------------------------------------------------------------------


class Newsletter(NamedTuple):
    subject: str
    preheader: str
    slug: str
    headline: str
    intro: str
    cta: tuple[str, str]  # label, path
    products: tuple[tuple[str, str, str], ...]  # name, path, price
    tags: tuple[str, ...]


# fmt: off
NEWSLETTERS = (
    Newsletter("Spring sale: 20% off all rain jackets", "Our lightest shells, a fifth off until Sunday.",
               "spring-sale", "Rain or shine, be ready", "Every waterproof jacket in the shop is 20% off until Sunday night. Free returns, as always.",
               ("Shop the sale", "/sale/rain-jackets"),
               (("Skyline 2.5L shell", "/p/skyline-shell", "&euro;&nbsp;119,95"),
                ("Drizzle packable jacket", "/p/drizzle-jacket", "&euro;&nbsp;79,95"),
                ("Torrent overtrousers", "/p/torrent-trousers", "&euro;&nbsp;59,95")),
               ("sale", "jackets")),
    Newsletter("New arrivals: lightweight tents for summer", "Three new tents under 2 kg.",
               "new-tents", "Sleep lighter this summer", "Our new tents pitch in five minutes and weigh less than a bag of sugar. Well, almost.",
               ("See the new tents", "/c/tents?sort=new"),
               (("Fjell 1 ultralight", "/p/fjell-1", "&euro;&nbsp;249,00"),
                ("Fjell 2 ultralight", "/p/fjell-2", "&euro;&nbsp;329,00"),
                ("Basecamp 4", "/p/basecamp-4", "&euro;&nbsp;449,00")),
               ("new", "tents")),
    Newsletter("Your April trail report", "Five routes, one packing list, zero blisters.",
               "trail-report-april", "Five spring routes worth the drive", "From the dunes of Schoorl to the Ardennes: our staff picked their favourite spring walks.",
               ("Read the trail report", "/journal/trail-report-april"),
               (("Dune loop, Schoorl (14 km)", "/journal/schoorl-dunes", "easy"),
                ("Ourthe valley (22 km)", "/journal/ourthe-valley", "moderate"),
                ("Packing list for day hikes", "/journal/day-hike-packing-list", "checklist")),
               ("content", "journal")),
    Newsletter("Last chance: free shipping ends tonight", "Order before midnight, no minimum.",
               "free-shipping", "Free shipping ends at midnight", "No minimum order, no code needed. Tomorrow it's back to normal.",
               ("Start shopping", "/?promo=freeship"),
               (("Merino base layer", "/p/merino-base", "&euro;&nbsp;64,95"),
                ("Trail runners", "/p/trail-runners", "&euro;&nbsp;139,95"),
                ("Insulated bottle 750 ml", "/p/bottle-750", "&euro;&nbsp;29,95")),
               ("promo", "shipping")),
    Newsletter("Join our webinar: packing light for long hikes", "Thursday 19:30, live Q&amp;A with our guides.",
               "webinar-packing-light", "Packing light, live", "Our guides show what they really carry on a ten-day trek, and answer your questions live.",
               ("Reserve your seat", "/events/webinar-packing-light/register"),
               (("Watch last month's webinar", "/events/webinar-layering/replay", "45 min"),
                ("The 10 kg challenge", "/journal/10kg-challenge", "article"),
                ("Guided treks 2025", "/treks", "from &euro;&nbsp;695")),
               ("event", "webinar")),
    Newsletter("How did we do? Two minutes for our survey", "Tell us, and get 10% off your next order.",
               "survey-2025", "How did we do?", "Tell us about your last order in two minutes and we'll send you a 10% discount code.",
               ("Take the survey", "/survey/2025?c={$profile.customerid}"),
               (("Our promise", "/about/promise", "returns"),
                ("Repair service", "/service/repairs", "free"),
                ("Find a store", "/stores", "12 stores")),
               ("survey",)),
)
# fmt: on

SHOP = "https://www.northwind.example"


def newsletter_html(n: Newsletter) -> tuple[str, dict[str, float]]:
    """The HTML of a newsletter and a weight per tracked URL (how often it is clicked)."""
    utm = f"utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign={n.slug}"
    cta = f"{SHOP}{n.cta[1]}{'&amp;' if '?' in n.cta[1] else '?'}{utm}"
    weights = {f"{SHOP}/newsletter/{n.slug}": 1.0, f"{SHOP}/?{utm}": 3.0,
               f"{SHOP}/campaign/{n.slug}": 12.0, cta: 30.0,
               f"{SHOP}/account/orders?customer={{$profile.customerid}}&amp;{utm}": 4.0,
               f"{SHOP}/refer?ref={{$profile.customerid}}&amp;name={{$profile.firstname}}": 2.0,
               "https://www.instagram.com/northwind.outdoor": 1.0,
               "https://www.facebook.com/northwindoutdoor": 0.7,
               f"{SHOP}/preferences?customer={{$profile.customerid}}": 1.5}  # fmt: skip
    cells = []
    for rank, (name, path, price) in enumerate(n.products):
        url = f"{SHOP}{path}?{utm}"
        weights[url] = 8.0 / (rank + 1)
        cells.append(
            f'<td class="product" width="33%" valign="top" style="padding:8px">\n'
            f'  <a href="{url}" style="color:#1d4d3a;font-weight:bold">{name}</a><br>\n'
            f'  <span style="color:#6b6b6b">{price}</span>\n</td>'
        )
    links = list(weights)
    html = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{n.subject}</title>
<!--[if mso]><style>table {{border-collapse: collapse;}}</style><![endif]-->
<style>a {{color: #1d4d3a;}} @media (max-width: 600px) {{ .product {{display: block;}} }}</style>
</head>
<body style="margin:0;padding:0;background:#f3f1ec">
<a id="top" name="top"></a>
<div style="display:none;max-height:0;overflow:hidden">{n.preheader}&nbsp;&zwnj;</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><td align="center" style="padding:12px;font:12px Arial,sans-serif;color:#6b6b6b">
  Trouble reading this? <a href="{links[0]}">View it in your browser</a>
</td></tr>
<tr><td align="center" style="padding:24px">
  <a href="{links[1]}"><img src="https://cdn.northwind.example/img/logo.png" width="180" alt="Northwind Outdoor"></a>
</td></tr>
<tr><td><a href='{links[2]}'><img src="https://cdn.northwind.example/img/{n.slug}.jpg" width="600" alt="{n.headline}" style="display:block;width:100%"></a></td></tr>
<tr><td style="padding:24px;font:16px/1.5 Georgia,serif;color:#222">
  <h1 style="font:bold 26px Arial,sans-serif">{n.headline}</h1>
  <p>{n.intro}</p>
  <p style="text-align:center"><a href="{links[3]}" style="background:#1d4d3a;color:#fff;padding:12px 28px;border-radius:4px;text-decoration:none">{n.cta[0]} &rarr;</a></p>
</td></tr>
<tr><td><table role="presentation" width="100%"><tr>
{chr(10).join(cells)}
</tr></table></td></tr>
<tr><td style="padding:24px;font:14px Arial,sans-serif">
  <p>Ordered recently? <a href="{links[4]}">Track your orders</a> &middot;
  Know someone who'd like this? <a HREF="{links[5]}">Give them &euro;&nbsp;10 off</a></p>
</td></tr>
<tr><td align="center" style="padding:24px;font:12px Arial,sans-serif;color:#6b6b6b">
  <a href="{links[6]}">Instagram</a> | <a href="{links[7]}">Facebook</a><br>
  Questions? Mail <a href="mailto:service@northwind.example">service@northwind.example</a>
  or reply to this message. <a href="#top">Back to top &uarr;</a><br>
  Northwind Outdoor B.V., Keizersgracht 1, 1015 CJ Amsterdam &mdash;
  <a href="{links[8]}">Email preferences</a>
</td></tr>
</table>
</body>
</html>
"""
    return html, {url.replace("&amp;", "&"): weight for url, weight in weights.items()}


# -- behaviour -------------------------------------------------------------------------


@dataclass
class _Mailing:
    summary: EmailingSummary
    links: list[int]  # tracked link IDs, in document order
    cum_weights: list[float]
    open_factor: float  # this emailing's appeal: scales everyone's chance of opening
    ctor: float  # share of openers who click
    window: float  # seconds the MTA takes to send the whole list
    keys: random.Random  # event keys: unique per emailing, reproducible with the seed
    delivered: list[tuple[int, Person, float]] = field(default_factory=list)
    opened: list[tuple[int, Person, float]] = field(default_factory=list)


class _Generator:
    def __init__(self, store: Store, account: Account, options: Options) -> None:
        self.store, self.account, self.options = store, account, options
        self.rng = random.Random(options.seed)
        self.now = options.now if options.now is not None else int(time.time())
        self.events: list[Event] = []
        self.summaries: dict[int, EmailingSummary] = {}
        self.suppressed: set[str] = set()  # profiles not mailed again: bounced, opted out
        self.seen: set[tuple[int, int]] = set()  # (kind, destination) pairs written

    def add(
        self, m: _Mailing, kind: Kind, ts: float, dest: int, values: Any, link: int = 0
    ) -> None:
        key = m.keys.randbytes(16)
        self.events.append(
            Event(kind, key, int(ts), self.account.id, m.summary.id, dest, link, tuple(values))
        )

    def ip(self, p: Person) -> str:
        if p.persona.roaming and self.rng.random() < 0.5:
            return _ipv6(self.rng) if self.rng.random() < p.persona.ipv6 else _ipv4(self.rng)
        return p.ip

    def recipient(self, m: _Mailing, dest: int, p: Person) -> None:
        """Everything that happens to one message: delivery or bounces, opens, clicks."""
        rng = self.rng
        start = m.summary.sent + rng.uniform(0, m.window)
        if p.bad_address is not None or rng.random() < 0.002:  # 0.2%: blocked as spam
            bounce = HARD_BOUNCES[p.bad_address if p.bad_address is not None else 4]
            self.error(m, dest, p, start + rng.uniform(2, 90), bounce, "hard")
            self.suppressed.add(p.profile)
            return
        attempts = 1
        if rng.random() < 0.02:
            bounce = rng.choice(SOFT_BOUNCES)
            start += rng.uniform(5, 600)
            self.error(m, dest, p, start, bounce, "soft")
            if rng.random() < 0.3:  # the MTA gives up in the end
                self.error(m, dest, p, start + rng.uniform(4, 48) * HOUR, bounce, "soft")
                return
            attempts = rng.choice((2, 2, 2, 3))
            start += sum(rng.uniform(0.2, 3) * HOUR for _ in range(attempts - 1))
        elif rng.random() < 0.02:
            attempts = 2
            start += rng.uniform(300, 1800)
        delivered = start + rng.uniform(1, 20)
        self.add(m, DELIVERIES, delivered, dest, (attempts,))
        m.delivered.append((dest, p, delivered))
        if p.scanned:
            self.scan(m, dest, delivered)
        opens = self.opens(m, dest, p, delivered)
        if opens:
            m.opened.append((dest, p, opens[0]))
            if rng.random() < m.ctor:
                self.clicks(m, dest, p, opens)

    def error(
        self, m: _Mailing, dest: int, p: Person, ts: float, bounce: tuple[str, str, str], kind: str
    ) -> None:
        status, code, text = bounce
        text = text.format(email=p.email, domain=p.email.partition("@")[2])
        self.add(m, ERRORS, ts, dest, (status, code, text, kind, reason(status, text)))

    def scan(self, m: _Mailing, dest: int, delivered: float) -> None:
        """A mail-security gateway fetches the images and follows every link at once."""
        ts = delivered + self.rng.uniform(2, 40)
        ua, ip = self.rng.choice(SCANNERS), f"198.51.100.{self.rng.randint(200, 254)}"
        self.add(m, IMPRESSIONS, ts, dest, hit_values(ip, ua))
        for link in m.links:
            self.add(m, CLICKS, ts + self.rng.uniform(0, 2), dest, hit_values(ip, ua), link)

    def opens(self, m: _Mailing, dest: int, p: Person, delivered: float) -> list[float]:
        rng = self.rng
        if rng.random() >= min(0.98, p.engagement * m.open_factor):
            return []
        mean = rng.choices((1.5 * HOUR, 8 * HOUR, 36 * HOUR), weights=(55, 30, 15))[0]
        ts = delivered + 20 + rng.expovariate(1 / mean)
        times = []
        for _ in range(rng.choices((1, 2, 3, 4, 5, 6, 8), weights=(50, 25, 12, 6, 3, 2, 2))[0]):
            times.append(ts)
            proxy = p.persona.proxy
            ip = f"198.51.100.{rng.randint(*proxy)}" if proxy else self.ip(p)
            self.add(m, IMPRESSIONS, ts, dest, hit_values(ip, p.open_ua))
            ts += 60 + rng.expovariate(1 / (6 * HOUR))
        return times

    def clicks(self, m: _Mailing, dest: int, p: Person, opens: list[float]) -> None:
        rng = self.rng
        count = rng.choices((1, 2, 3, 4, 5, 7), weights=(40, 25, 15, 10, 5, 5))[0]
        for number in range(count):
            after = opens[0] if number == 0 or rng.random() < 0.6 else rng.choice(opens)
            link = rng.choices(m.links, cum_weights=m.cum_weights)[0]
            ts = after + 3 + rng.expovariate(1 / 120)
            self.add(m, CLICKS, ts, dest, hit_values(self.ip(p), p.click_ua), link)

    def unsubscribes_and_abuses(self, m: _Mailing) -> None:
        """A few opt out (mostly after reading), fewer still press 'this is spam'."""
        rng = self.rng
        if not m.delivered:
            return
        count = max(1, round(0.003 * len(m.delivered)))
        readers = rng.sample(m.opened, min(len(m.opened), math.ceil(count * 0.75)))
        others = rng.sample(m.delivered, min(len(m.delivered), count - len(readers)))
        for dest, p, after in {d[0]: d for d in [*readers, *others]}.values():
            ts = after + 30 + rng.expovariate(1 / (4 * HOUR))
            self.add(m, UNSUBSCRIBES, ts, dest, hit_values(self.ip(p), p.click_ua))
            self.suppressed.add(p.profile)
        for dest, p, delivered in rng.sample(m.delivered, max(1, round(0.0005 * len(m.delivered)))):
            ts = delivered + 600 + rng.expovariate(1 / (20 * HOUR))
            report = self.complaint(dest, p, delivered)
            self.add(m, ABUSES, ts, dest, (orjson.dumps(report).decode(),))
            self.suppressed.add(p.profile)

    def complaint(self, dest: int, p: Person, delivered: float) -> dict[str, Any]:
        """The feedback fields as `mailstats ingest-mail` stores them from an ARF report."""
        key = self.store.destination(self.account.id, dest).message_key
        agent = self.rng.choices(
            ("Yahoo!-Mail-Feedback/2.0", "Hotmail FBL", "AOL SComp"), weights=(6, 3, 1)
        )[0]
        report: dict[str, Any] = {
            "feedback-type": "abuse", "user-agent": agent, "version": "0.1",
            "original-mail-from": f"<bounces+{key}@mail.northwind.example>",
            "original-rcpt-to": [f"<{p.email}>"],
            "arrival-date": format_datetime(datetime.fromtimestamp(int(delivered), UTC)),
            "source-ip": "192.0.2.25", "reported-domain": ["northwind.example"],
        }  # fmt: skip
        if agent == "Hotmail FBL":  # JMRP names the recipient only in the original message
            del report["original-rcpt-to"]
        return report

    # -- the whole run -------------------------------------------------------------------

    def send_times(self) -> list[int]:
        """Mornings spread over the last `days`, the last one about a day before `now`."""
        o, now = self.options, self.now
        first, last = now - o.days * DAY, now - DAY
        times = []
        for i in range(o.emailings):
            target = last - (last - first) * (o.emailings - 1 - i) // max(1, o.emailings - 1)
            ts = target - target % DAY + 7 * HOUR + self.rng.randint(0, 3 * HOUR)
            while ts > now - 12 * HOUR:
                ts -= DAY
            times.append(ts)
        return times

    def register(self, index: int, sent: int) -> _Mailing:
        n = NEWSLETTERS[index % len(NEWSLETTERS)]
        html, weights = newsletter_html(n)
        spans = extract_links(html)
        emailing_id = self.store.create_emailing(
            self.account.id, subject=n.subject, from_name="Northwind Outdoor",
            from_email="news@northwind.example", html=html, text=None, tags=n.tags,
            type="mass", links=[(s.start, s.end, s.url) for s in spans], created_at=sent,
        )  # fmt: skip
        links = self.store.links(emailing_id)
        cum, total = [], 0.0
        for link in links:
            total += weights.get(link.url, 1.0)
            cum.append(total)
        summary = EmailingSummary(emailing_id, n.subject, sent, 0)
        return _Mailing(
            summary, [link.id for link in links], cum,
            open_factor=self.rng.uniform(0.88, 1.1), ctor=self.rng.uniform(0.08, 0.15),
            window=min(3600.0, max(60.0, self.options.destinations / 25)),
            keys=random.Random(f"{self.rng.getrandbits(64)}:{emailing_id}"),
        )  # fmt: skip

    def run(self, progress: Progress | None) -> Summary:
        started = time.monotonic()
        o = self.options
        taken: set[str] = set()
        # One audience for every emailing, with room for those who leave it along the way.
        size = math.ceil(o.destinations * 1.25) + o.emailings * (math.ceil(o.destinations / 50) + 2)
        people = [_person(self.rng, i, taken) for i in range(size)]
        mailings, registered, stored = [], 0, 0
        for index, sent in enumerate(self.send_times()):
            # Nothing made from here on happens before `sent`: what did can be written now.
            stored += self.write(sent, progress, registered, stored)
            m = self.register(index, sent)
            mailings.append(m)
            self.summaries[m.summary.id] = m.summary
            people = [p for p in people if p.profile not in self.suppressed]
            audience = self.rng.sample(people, min(o.destinations, len(people)))
            audience.sort(key=lambda p: int(p.profile))
            for at in range(0, len(audience), o.batch):
                batch = audience[at : at + o.batch]
                items = [{"email": p.email, "profile": p.profile, "subprofile": p.subprofile,
                          "fields": p.fields, "timestamp": sent} for p in batch]  # fmt: skip
                ids = self.store.create_destinations(self.account.id, m.summary.id, items)
                for dest, p in zip(ids, batch, strict=True):
                    self.recipient(m, dest, p)
                registered += len(batch)
                if progress:
                    progress(registered, stored)
            m.summary.destinations = len(audience)
            self.unsubscribes_and_abuses(m)
        stored += self.write(self.now + 1, progress, registered, stored)
        return Summary([m.summary for m in mailings], stored, time.monotonic() - started)

    def write(self, before: int, progress: Progress | None, registered: int, stored: int) -> int:
        """Write the events that happen before `before`, in time order; drop the rest if
        that is the end. Return how many were new.

        In time order, as a live server would have written them: IDs follow time, and the
        first event of each kind per destination (and link) is also the earliest.
        """
        self.events.sort(key=lambda e: e.ts)
        cut = bisect.bisect_left(self.events, before, key=lambda e: e.ts)
        events, self.events = self.events[:cut], self.events[cut:]
        written = 0
        for at in range(0, len(events), self.options.batch):
            batch = events[at : at + self.options.batch]
            written += self.store.insert_events(batch)
            for e in batch:
                summary = self.summaries[e.emailing_id]
                summary.counts[e.kind.name] += 1
                if (e.kind.code, e.destination_id) not in self.seen:
                    self.seen.add((e.kind.code, e.destination_id))
                    summary.uniques[e.kind.name] += 1
            if progress:
                progress(registered, stored + written)
        return written


def generate(
    store: Store, account: Account, options: Options, progress: Progress | None = None
) -> Summary:
    """Fill `account` with emailings, destinations and events; return what was made.

    >>> account = store.ensure_account("demo", "UTC")  # doctest: +SKIP
    >>> generate(store, account, Options(emailings=2, seed=1)).totals["clicks"]  # doctest: +SKIP
    """
    return _Generator(store, account, options).run(progress)
