"""Registering an emailing and its recipients, the tracked HTML, and /c/ clicks (issue 2)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from starlette.testclient import TestClient

from mailstats.settings import Settings
from mailstats.tracking.tokens import Purpose, Signer
from mailstats.web.app import App, create_app
from tests.helpers import (
    PUBLIC,
    SENDER,
    TRAP,
    UA,
    Mailing,
    add_destinations,
    body_html,
    click,
    click_paths,
    get,
    local,
    make_emailing,
    page,
)

ANY_TRACKED = re.compile(r"http://t\.test(/c/[A-Za-z0-9_-]+)")
TOKEN = rb"[A-Za-z0-9_-]{1,48}"
PEER = "203.0.113.7"  # the test client's address


def clicks_total(http: TestClient, token: str) -> int:
    total: int = page(http, token)["total"]
    return total


# --- registering --------------------------------------------------------------------------


def test_create_emailing_answers_201_with_x_created(http: TestClient, token: str) -> None:
    data = {"subject": "Hi", "from_address": SENDER, "html": "<p>x</p>", "tags": ["a"]}
    r = http.post("/v2/ms/emailings", params={"access_token": token}, json=data)
    assert r.status_code == 201
    assert re.fullmatch(r"[1-9][0-9]*", r.headers["x-created"])
    assert r.content == b""
    again = http.post("/v2/ms/emailings", headers={"authorization": f"Bearer {token}"}, json=data)
    assert again.status_code == 201
    assert int(again.headers["x-created"]) > int(r.headers["x-created"])
    r = get(http, token, f"ms/emailing/{r.headers['x-created']}")
    assert (r.json()["subject"], r.json()["tags"]) == ("Hi", ["a"])


def test_links_are_extracted_whatever_the_markup(http: TestClient, token: str) -> None:
    html = (
        '<a href="https://a.example/1">double</a>\n'
        "<a href='https://a.example/2'>single</a>\n"
        "<a href=https://a.example/3>bare</a>\n"
        '<A HREF="https://a.example/4">upper</A>\n'
        '<a class="x" Href = "https://a.example/5?x=1&amp;y=2&#38;z=3">entities</a>\n'
        '<a href="http://a.example/6">plain http</a>\n'
        '<a href="mailto:info@a.example">mail</a> <a href="#top">top</a> <a name="n">n</a>\n'
        '<a href="ftp://a.example/f">ftp</a> <a href="/relative">rel</a>\n'
    )
    [dest] = add_destinations(http, token, make_emailing(http, token, html))
    body = body_html(http, token, dest)
    traps = TRAP.findall(body)
    paths = [path for path in ANY_TRACKED.findall(body) if path not in traps]
    assert len(traps) == 1  # the invisible trap link, once
    locations = [http.get(path).headers["location"] for path in paths]
    assert locations == [
        "https://a.example/1",
        "https://a.example/2",
        "https://a.example/3",
        "https://a.example/4",
        "https://a.example/5?x=1&y=2&z=3",
        "http://a.example/6",
    ]
    links = [item["link"] for item in page(http, token)["data"]]
    assert links == locations


def test_destinations_one_object_or_a_list(http: TestClient, token: str, m: Mailing) -> None:
    auth = {"access_token": token}
    path = f"/v2/ms/emailing/{m.id}/destinations"
    one = http.post(path, params=auth, json={"email": "x@example.org", "profile": "9"})
    assert one.status_code == 201 and one.content == b""
    assert re.fullmatch(r"[1-9][0-9]*", one.headers["x-created"])
    items = [{"email": f"n{i}@example.org", "profile": f"N{i}", "subprofile": i} for i in range(3)]
    many = http.post(path, params=auth, json=items)
    assert many.status_code == 201 and many.content == b""
    created = [int(part) for part in many.headers["x-created"].split(",")]
    assert len(created) == 3 and created == sorted(set(created))
    assert int(one.headers["x-created"]) < created[0]
    for n, dest in enumerate(created):
        r = get(http, token, f"ms/destination/{dest}")
        assert r.status_code == 200
        assert (r.json()["mailing"], r.json()["profile"], r.json()["subprofile"]) == (
            str(m.id),
            f"N{n}",
            str(n),
        )
    listed = page(http, token, f"ms/emailing/{m.id}/destinations")
    assert listed["total"] == 2 + 1 + 3


# --- the tracked HTML ---------------------------------------------------------------------

# The template in pieces: odd pieces are the tracked link values, the rest must come back
# byte for byte (the open pixel goes before the last </body>).
PIECES = [
    '<!DOCTYPE html>\r\n<html lang="nl">\n<head><meta charset="utf-8">'
    "<title>Caf\u00e9 &amp; co</title>\n"
    "<!--[if mso]><style>td{font-family:Arial}</style><![endif]-->\n"
    "<style>\n\ta { color: #c00 }\n</style></head>\n"
    "<body>\t<p>Prijs:&nbsp;&euro;&#8364; 10 \u2014 \u65e5\u672c\u8a9e \U0001f600</p>\r\n"
    '<!-- <a href="https://commented.example/">old</a> -->\n'
    '<a  href = "',
    "https://shop.example/p?id={$profile.customerid}&amp;utm=mail",
    "\"  class=btn >Shop</a>\n<a href='",
    "https://shop.example/b",
    "'>B</a>   \n"
    '<a href="mailto:info@shop.example?subject=Hi%20there">mail</a> <a href="#top">top</a>\n'
    '<!--[if !mso]><!--><a href="',
    "https://shop.example/b",
    '">again</a><!--<![endif]-->\n'
    "<p>&lt;a href=&quot;https://not.a.link/&quot;&gt;</p>\n"
    "</body>\n</html>\n",
]


def rendered_pattern(pieces: list[str]) -> bytes:
    """The rendered message as a pattern: the literal pieces, tracked links, the invisible
    trap link and the pixel."""
    *head, last = pieces
    link = rb"(http://t\.test/c/" + TOKEN + rb")"
    parts = [link if i % 2 else re.escape(piece.encode()) for i, piece in enumerate(head)]
    before, _, after = last.rpartition("</body>")
    pixel = rb'<img\b[^>]*\bsrc="http://t\.test/o/' + TOKEN + rb'"[^>]*>'
    trap = rb'<a href="http://t\.test/c/' + TOKEN + rb'" aria-hidden="true" tabindex="-1"'
    pixel = trap + rb' style="display:none"></a>' + pixel
    return (
        b"".join(parts) + re.escape(before.encode()) + pixel + re.escape(f"</body>{after}".encode())
    )


def test_body_html_is_the_template_except_links_trap_and_pixel(
    http: TestClient, token: str
) -> None:
    template = "".join(PIECES)
    emailing = make_emailing(http, token, template)
    [dest] = add_destinations(
        http, token, emailing, {"email": "a@example.org", "fields": {"customerid": "c1"}}
    )
    r = http.get(f"/v2/ms/destination/{dest}/body/html", params={"access_token": token})
    assert r.status_code == 200
    match = re.fullmatch(rendered_pattern(PIECES), r.content)
    assert match is not None, r.text
    locations = [
        http.get(url.decode().removeprefix(PUBLIC)).headers["location"] for url in match.groups()
    ]
    assert locations == [
        "https://shop.example/p?id=c1&utm=mail",
        "https://shop.example/b",
        "https://shop.example/b",
    ]


def test_each_destination_gets_its_own_links(http: TestClient, token: str, m: Mailing) -> None:
    first, second = (click_paths(http, token, d) for d in m.destinations)
    assert len(first) == len(second) == 2
    assert not set(first) & set(second)
    assert click_paths(http, token, m.destinations[0]) == first  # stable on every fetch


# --- /c/ ----------------------------------------------------------------------------------


def test_click_redirects_to_the_personalised_url(http: TestClient, token: str) -> None:
    html = (
        '<a href="https://shop.example/p/{$profile.customerid}?seg={$subprofile.segment}'
        '&amp;n={$profile.n}&amp;x=1">x</a>'
    )
    fields = {"customerid": "c 7/\u00e9&?#", "segment": "a+b=c", "n": 42}
    [dest] = add_destinations(
        http, token, make_emailing(http, token, html), {"email": "a@example.org", "fields": fields}
    )
    r = click(http, token, dest)
    assert r.headers["location"] == (
        "https://shop.example/p/c%207%2F%C3%A9%26%3F%23?seg=a%2Bb%3Dc&n=42&x=1"
    )
    assert r.content == b""
    [item] = page(http, token)["data"]
    assert item["link"] == (
        "https://shop.example/p/{$profile.customerid}?seg={$subprofile.segment}&n={$profile.n}&x=1"
    )


def test_click_records_one_click_with_address_and_agent(
    http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[1]
    before = int(time.time())
    click(http, token, dest, link=1, ua="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148")
    after = int(time.time())
    body = page(http, token)
    assert body["total"] == 1
    [item] = body["data"]
    assert local(before) <= item["timestamp"] <= local(after)
    assert {k: v for k, v in item.items() if k not in ("ID", "timestamp")} == {
        "mailing": str(m.id),
        "link": "https://shop.example/b",
        "ip": PEER,
        "useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148",
        "destination": str(dest),
        "profile": "P1",
        "subprofile": "S1",
    }
    click(http, token, dest, link=1)
    assert clicks_total(http, token) == 2


def test_redirect_depends_on_the_token_only(http: TestClient, token: str, m: Mailing) -> None:
    path = click_paths(http, token, m.destinations[0])[1]
    tricks = [
        f"{path}?url=https://evil.example/&next=//evil.example&redirect=https%3A%2F%2Fevil.example",
        f"{path}?location=https://evil.example/",
    ]
    for url in [path, *tricks]:
        r = http.get(url, headers={"host": "evil.example", "referer": "https://evil.example/"})
        assert (r.status_code, r.headers["location"]) == (302, "https://shop.example/b"), url
    assert clicks_total(http, token) == 3


def forgeries(real: str, pixel: str, unsubscribe: str, destination: int, link: int) -> list[str]:
    """Tokens a visitor could make up from a real one; none may work."""

    def swap(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]

    return [
        real[:-1],
        real[: len(real) // 2],
        real + "A",
        real + "=",
        real + "==",
        swap(real, 0),
        swap(real, len(real) // 2),
        swap(real, -1),
        real.swapcase(),
        real.replace("-", "+").replace("_", "/") if ("-" in real or "_" in real) else real + "+",
        real[::-1],
        "A" * len(real),
        "x" * 200,
        real + "%00",
        pixel,
        unsubscribe,
        Signer(b"not the server's secret").sign(Purpose.CLICK, destination, link),
    ]


def test_forged_tokens_answer_404_and_record_nothing(
    app: App, http: TestClient, token: str, m: Mailing
) -> None:
    dest = m.destinations[0]
    html = body_html(http, token, dest)
    real = click_paths(http, token, dest)[0].removeprefix("/c/")
    pixel = re.search(r'src="http://t\.test/o/([A-Za-z0-9_-]+)"', html)
    headers = get(http, token, f"ms/destination/{dest}/headers").json()
    unsubscribe = re.search(r"/u/([A-Za-z0-9_-]+)>", headers["List-Unsubscribe"])
    assert pixel is not None and unsubscribe is not None
    wrong = {}
    for fake in forgeries(real, pixel[1], unsubscribe[1], dest, m.links[0]):
        for method in ("GET", "HEAD"):
            r = http.request(method, f"/c/{fake}")
            if r.status_code != 404 or "location" in r.headers:
                wrong[f"{method} {fake}"] = (r.status_code, r.headers.get("location"))
    assert wrong == {}
    for bare in ("/c/", "/c"):  # no token at all: not a redirect either
        r = http.get(bare)
        assert r.status_code != 302 and "location" not in r.headers
    assert clicks_total(http, token) == 0
    assert http.get(f"/c/{real}").status_code == 302  # the real one still works


def test_token_for_an_open_does_not_work_as_a_click(
    http: TestClient, token: str, m: Mailing
) -> None:
    pixel = re.search(
        r'src="http://t\.test(/o/[A-Za-z0-9_-]+)"', body_html(http, token, m.destinations[0])
    )
    assert pixel is not None
    assert http.get(pixel[1]).status_code == 200  # a real token, for opens
    r = http.get(pixel[1].replace("/o/", "/c/", 1))
    assert r.status_code == 404 and "location" not in r.headers
    assert clicks_total(http, token) == 0


def test_tokens_are_short_and_url_safe(http: TestClient, token: str, m: Mailing) -> None:
    for dest in m.destinations:
        for path in click_paths(http, token, dest):
            assert re.fullmatch(r"/c/[A-Za-z0-9_-]{1,48}", path)


def test_head_redirects_and_is_kept_as_a_machine_click(
    http: TestClient, token: str, m: Mailing
) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    head = http.head(path)
    assert head.status_code == 302
    assert head.headers["location"] == "https://shop.example/a?id=c0"
    [item] = page(http, token, qs="extended=true")["data"]
    assert (item["verdict"], item["reasons"]) == ("scanner", ["too-soon", "head"])
    assert http.get(path).headers["location"] == head.headers["location"]
    assert clicks_total(http, token) == 2


# --- the client address -------------------------------------------------------------------


def test_x_forwarded_for_ignored_without_trusted_proxies(
    http: TestClient, token: str, m: Mailing
) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    http.get(path, headers={"x-forwarded-for": "198.51.100.9", "user-agent": UA})
    http.get(path, headers={"x-forwarded-for": "198.51.100.9, 192.0.2.1", "user-agent": UA})
    assert [item["ip"] for item in page(http, token)["data"]] == [PEER, PEER]


@contextmanager
def behind_proxy(settings: Settings, trusted: str, peer: str = PEER) -> Iterator[TestClient]:
    """A second app on the same database that trusts `trusted`, reached from `peer`."""
    app = create_app(settings.replace(trusted_proxies=trusted))
    try:
        with TestClient(app, base_url=PUBLIC, follow_redirects=False, client=(peer, 5000)) as c:
            yield c
    finally:
        app.close()


PROXIES = [
    # trusted networks, client peer, X-Forwarded-For, the address recorded
    ("203.0.113.0/24", PEER, "198.51.100.9", "198.51.100.9"),
    ("203.0.113.7/32", PEER, "198.51.100.9, 203.0.113.50", "203.0.113.50"),
    ("203.0.113.0/24", PEER, "1.2.3.4, 198.51.100.9, 203.0.113.50", "198.51.100.9"),
    ("203.0.113.0/24", PEER, "", PEER),
    ("10.0.0.0/8", PEER, "198.51.100.9", PEER),
    ("10.0.0.0/8,203.0.113.0/24", PEER, "2001:db8::9", "2001:db8::9"),
    ("2001:db8::/32", "2001:db8::1", "198.51.100.9", "198.51.100.9"),
]


def test_x_forwarded_for_counts_only_from_trusted_proxies(
    settings: Settings, http: TestClient, token: str, m: Mailing
) -> None:
    path = click_paths(http, token, m.destinations[0])[0]
    wrong = {}
    for n, (trusted, peer, forwarded, recorded) in enumerate(PROXIES):
        headers = {"x-forwarded-for": forwarded} if forwarded else {}
        with behind_proxy(settings, trusted, peer) as proxied:
            assert proxied.get(path, headers=headers).status_code == 302
        data = page(http, token, qs=f"start={n}")["data"]
        if [item["ip"] for item in data] != [recorded]:
            wrong[(trusted, peer, forwarded)] = data
    assert wrong == {}


def test_concurrent_clicks_on_new_destinations_each_get_their_own_redirect(
    app: App, http: TestClient, token: str
) -> None:
    """Lookups of destinations not yet cached are answered many at once, each to its request."""
    emailing = make_emailing(http, token, '<a href="https://shop.example/?n={$profile.n}">x</a>')
    items = [{"email": f"r{i}@example.org", "fields": {"n": str(i)}} for i in range(60)]
    paths = [
        click_paths(http, token, dest)[0]
        for dest in add_destinations(http, token, emailing, *items)
    ]

    async def all_at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
            return await asyncio.gather(*(client.get(path) for path in paths))

    answers = asyncio.run(all_at_once())
    assert [(r.status_code, r.headers["location"]) for r in answers] == [
        (302, f"https://shop.example/?n={i}") for i in range(60)
    ]
    assert clicks_total(http, token) == 60


KEYS_SCRIPT = """
import os
from mailstats.web.tracking import new_key
first = new_key()
read, write = os.pipe()
if os.fork() == 0:
    os.write(write, new_key())
    os._exit(0)
os.wait()
print(first.hex(), new_key().hex(), os.read(read, 16).hex())
"""


def test_event_keys_differ_across_processes_and_forks() -> None:
    """Keys are a per-process prefix and a counter: no two processes may share a prefix."""
    runs = [
        subprocess.run([sys.executable, "-c", KEYS_SCRIPT], capture_output=True, text=True,
                       check=True).stdout.split()
        for _ in range(2)
    ]  # fmt: skip
    keys = [bytes.fromhex(key) for run in runs for key in run]
    assert all(len(key) == 16 for key in keys)
    (first, second, child), (other, _, _) = [[bytes.fromhex(k) for k in run] for run in runs]
    assert first[:10] == second[:10] and first != second  # one process: one prefix, counting
    assert child[:10] != first[:10]  # a forked child draws its own
    assert other[:10] != first[:10]  # and so does every new process
    assert len(set(keys)) == len(keys)
