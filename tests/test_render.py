"""Tests for mailstats.tracking.render: link extraction, byte-exact rendering, personalisation."""

from __future__ import annotations

import html as htmllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailstats.tracking.render import LinkSpan, extract_links, personalise, render

PIXEL_URL = "https://t.example/o/TOKEN"
PIXEL = (
    '<img src="https://t.example/o/TOKEN" width="1" height="1" alt=""'
    ' style="display:none;border:0;width:1px;height:1px">'
)

NEWSLETTER = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
    ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\r\n'
    '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:v="urn:schemas-microsoft-com:vml">\r\n'
    "<head>\r\n"
    '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n'
    "<title>Voorjaarsactie \u2014 20% korting</title>\r\n"
    "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings><o:PixelsPerInch>96"
    "</o:PixelsPerInch></o:OfficeDocumentSettings></xml><![endif]-->\r\n"
    '<style type="text/css">\r\n'
    "  a[x-apple-data-detectors] { color: inherit !important; }\r\n"
    "  .btn a { background: url('https://cdn.example.com/bg.png'); }\r\n"
    "</style>\r\n"
    "</head>\r\n"
    '<body style="margin:0;padding:0;">\r\n'
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">\r\n'
    '<tr><td align="center" style="font-family:Arial,sans-serif;">\r\n'
    '  <a href="#top" name="top">Naar boven</a>\r\n'
    '  <A HREF="https://shop.example.com/lente?utm_source=mail&amp;utm_medium=email'
    '&amp;id={$profile.customerid}" TARGET="_blank">Bekijk de actie &rarr;</A>\r\n'
    "  <!--[if mso]>\r\n"
    '  <v:roundrect href="https://shop.example.com/vml" arcsize="10%"><center>Shop</center>'
    "</v:roundrect>\r\n"
    '  <a href="https://shop.example.com/mso-only">MSO</a>\r\n'
    "  <![endif]-->\r\n"
    "  <!--[if !mso]><!-- -->\r\n"
    "  <a class='btn' href='https://shop.example.com/button'>Shop nu</a>\r\n"
    "  <!--<![endif]-->\r\n"
    "  <p>Gr\u00fc\u00dfe, caf\u00e9 \u2014 \U0001f337 na\u00efve &nbsp;&copy; 2024</p>\r\n"
    '  <img src="https://cdn.example.com/logo.png" alt="Logo" usemap="#m">\r\n'
    '  <map name="m"><area shape="rect" coords="0,0,10,10" href=https://www.example.com/map'
    ' alt="map"></map>\r\n'
    '  <a href="mailto:info@example.com?subject=Vraag&amp;body=Hoi">Mail ons</a> \u00b7'
    ' <a href="tel:+31201234567">Bel</a>\r\n'
    '  <a href="/relative/path">rel</a> <a href="javascript:void(0)">js</a>'
    ' <a href="//cdn.example.com/x">proto</a>\r\n'
    '  <a href="HTTP://OLD.EXAMPLE.COM/Path">Oud</a>\r\n'
    '  <a style="color:#999" href="https://www.example.com/afmelden?e={$profile.email}'
    '&amp;k={$subprofile.key}">Afmelden</a>\r\n'
    "</td></tr>\r\n"
    "</table>\r\n"
    "<script>document.write('<a href=\"https://script.example.com/\">')</script>\r\n"
    "</body>\r\n"
    "</html>\r\n"
)

# Each tracked link of NEWSLETTER: its attribute as written, and the URL it holds.
NEWSLETTER_LINKS = [
    (
        'HREF="https://shop.example.com/lente?utm_source=mail&amp;utm_medium=email'
        '&amp;id={$profile.customerid}"',
        "https://shop.example.com/lente?utm_source=mail&utm_medium=email&id={$profile.customerid}",
    ),
    ("href='https://shop.example.com/button'", "https://shop.example.com/button"),
    ("href=https://www.example.com/map ", "https://www.example.com/map"),
    ('href="HTTP://OLD.EXAMPLE.COM/Path"', "HTTP://OLD.EXAMPLE.COM/Path"),
    (
        'href="https://www.example.com/afmelden?e={$profile.email}&amp;k={$subprofile.key}"',
        "https://www.example.com/afmelden?e={$profile.email}&k={$subprofile.key}",
    ),
]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def tracked_attribute(attribute: str, index: int) -> str:
    """The attribute as it must look once its value is replaced by a tracking URL."""
    name, _, value = attribute.partition("=")
    quote = value[0] if value[0] in "\"'" else ""
    trail = " " if value.endswith(" ") else ""
    return f"{name}={quote}https://t.example/c/{index}{quote}{trail}"


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_extract_links_finds_tracked_links_of_a_newsletter(newline: str) -> None:
    template = NEWSLETTER.replace("\r\n", newline)
    links = extract_links(template)
    assert [link.url for link in links] == [url for _, url in NEWSLETTER_LINKS]
    for link, (attribute, _) in zip(links, NEWSLETTER_LINKS, strict=True):
        at = template.index(attribute)
        assert at < link.start < link.end <= at + len(attribute)
        assert htmllib.unescape(template[link.start : link.end]) == link.url


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_render_changes_only_the_links_and_adds_the_pixel(newline: str) -> None:
    template = NEWSLETTER.replace("\r\n", newline)
    links = extract_links(template)
    replacements = [
        (link.start, link.end, f"https://t.example/c/{index}") for index, link in enumerate(links)
    ]

    expected = template
    for index, (attribute, _) in enumerate(NEWSLETTER_LINKS):
        expected = replace_once(expected, attribute, tracked_attribute(attribute, index))
    expected = replace_once(expected, "</body>", PIXEL + "</body>")

    rendered = render(template, replacements, PIXEL_URL)
    assert rendered.encode("utf-8") == expected.encode("utf-8")
    assert rendered.count(newline) == template.count(newline)


def test_render_without_edits_returns_the_template() -> None:
    assert render(NEWSLETTER, [], None) == NEWSLETTER


def test_area_tag_and_mixed_case_attribute_names() -> None:
    template = '<map><AREA Href="https://a.example/1"><Area hReF="http://a.example/2"></map>'
    assert [link.url for link in extract_links(template)] == [
        "https://a.example/1",
        "http://a.example/2",
    ]


@pytest.mark.parametrize(
    "template",
    [
        '<a href="mailto:a@example.com">',
        '<a href="tel:+3120">',
        '<a href="#section">',
        '<a href="/path">',
        '<a href="path/page.html">',
        '<a href="javascript:alert(1)">',
        '<a href="ftp://files.example.com/">',
        '<a href="https:example.com">',
        '<a href="{$profile.website}">',
        '<a href="">',
        "<a href>",
        '<a name="https://name.example/">',
        '<link href="https://style.example/a.css">',
        '<img src="https://img.example/a.png">',
        '<!-- <a href="https://comment.example/"> -->',
        '<!--[if mso]><a href="https://mso.example/"><![endif]-->',
        "<script>x = '<a href=\"https://script.example/\">'</script>",
        '<style>a[href="https://style.example/"] { color: red }</style>',
        '<a href="https://unclosed.example/"',
    ],
)
def test_links_that_are_not_tracked(template: str) -> None:
    assert extract_links(template) == []


@pytest.mark.parametrize(
    ("template", "raw", "url"),
    [
        ('<a href="https://a.example/">', "https://a.example/", "https://a.example/"),
        ("<a href='https://a.example/'>", "https://a.example/", "https://a.example/"),
        ("<a href=https://a.example/>", "https://a.example/", "https://a.example/"),
        ('<a href="  https://a.example/\n">', "  https://a.example/\n", "https://a.example/"),
        ('<a\r\n  href\r\n=\r\n"https://a.example/">', "https://a.example/", "https://a.example/"),
        (
            '<a href="https://a.example/&#x3F;q=1">',
            "https://a.example/&#x3F;q=1",
            "https://a.example/?q=1",
        ),
        ('<a href="Https://a.example/">', "Https://a.example/", "Https://a.example/"),
        (
            '<a href="https://one.example/" href="https://two.example/">',
            "https://one.example/",
            "https://one.example/",
        ),
        (
            '<a title="href=\'https://fake.example/\'" href="https://real.example/">',
            "https://real.example/",
            "https://real.example/",
        ),
        (
            '<a data-href="https://data.example/" href="https://real.example/">',
            "https://real.example/",
            "https://real.example/",
        ),
        ('<a href="https://a.example/"/>', "https://a.example/", "https://a.example/"),
        (
            "<![bogus[ x ]]><a href='https://after.example/'>",
            "https://after.example/",
            "https://after.example/",
        ),
        (
            "<p>\n\n<![bogus[ x ]]>\n<b>\n<a href='https://after.example/'>",
            "https://after.example/",
            "https://after.example/",
        ),
        (
            '\U0001f600\r\n\u00e9<a href="https://a.example/\u00fc">',
            "https://a.example/\u00fc",
            "https://a.example/\u00fc",
        ),
    ],
)
def test_link_span_and_decoded_url(template: str, raw: str, url: str) -> None:
    [link] = extract_links(template)
    assert template[link.start : link.end] == raw
    assert link == LinkSpan(link.start, link.end, url)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("<html><body>Hi</body></html>", "<html><body>Hi{pixel}</body></html>"),
        ("<BODY>Hi</BODY >\n", "<BODY>Hi{pixel}</BODY >\n"),
        (
            "<body><!-- </body> -->Hi</body></html>",
            "<body><!-- </body> -->Hi{pixel}</body></html>",
        ),
        ("<body>Hi</body><!-- </Body> -->", "<body>Hi</body><!-- {pixel}</Body> -->"),
        ("<p>Fragment without a body", "<p>Fragment without a body{pixel}"),
        ("", "{pixel}"),
    ],
)
def test_pixel_goes_before_the_last_closing_body(template: str, expected: str) -> None:
    assert render(template, [], PIXEL_URL) == expected.format(pixel=PIXEL)


def test_pixel_url_is_attribute_escaped() -> None:
    rendered = render("<body></body>", [], 'https://t.example/o/"><script>&')
    assert rendered == (
        '<body><img src="https://t.example/o/&quot;&gt;&lt;script&gt;&amp;"'
        ' width="1" height="1" alt="" style="display:none;border:0;width:1px;height:1px">'
        "</body>"
    )


def test_pixel_and_replacement_at_the_same_offset() -> None:
    assert render("ab</body>", [(2, 2, "X")], PIXEL_URL) == "ab" + PIXEL + "X</body>"
    # A replaced span that starts at the only "</body" removes it: the pixel goes last.
    assert render("ab</body>", [(2, 3, "Y")], PIXEL_URL) == "abY/body>" + PIXEL


def test_closing_body_inside_a_replaced_value_is_not_used() -> None:
    template = '<body><a href="https://x.example/</body>">x</a></body>'
    [link] = extract_links(template)
    rendered = render(template, [(link.start, link.end, "T")], PIXEL_URL)
    assert rendered == '<body><a href="T">x</a>' + PIXEL + "</body>"


def test_adjacent_and_empty_replacements() -> None:
    assert render("abcdef", [(0, 2, "X"), (2, 2, "-"), (2, 6, "Y")], None) == "X-Y"


@pytest.mark.parametrize(
    "replacements",
    [
        [(2, 4, "x"), (0, 1, "y")],
        [(0, 3, "x"), (2, 4, "y")],
        [(3, 2, "x")],
        [(-1, 2, "x")],
        [(4, 7, "x")],
    ],
)
def test_render_rejects_bad_spans(replacements: list[tuple[int, int, str]]) -> None:
    with pytest.raises(ValueError, match="span"):
        render("abcdef", replacements, None)


def test_tag_the_parser_reads_differently_is_left_alone() -> None:
    # Python's parser reads x="HREF=https://b.example/" here; a naive scan of the tag
    # would find an href. Rewriting only what both agree on keeps the two consistent.
    assert extract_links("<a x==\tHREF=https://b.example/>") == []
    assert extract_links("<a x=1\tHREF=https://b.example/>") != []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/?id={$profile.id}", "https://a.example/?id=42"),
        ("https://a.example/{$subprofile.id}", "https://a.example/sub-7"),
        ("https://a.example/?n={$profile.name}", "https://a.example/?n=Jan%20%26%20Pi%C3%ABt%2F2"),
        ("https://a.example/?c={$profile.city}", "https://a.example/?c=Delft"),
        ("https://a.example/?m={$profile.missing}&x=1", "https://a.example/?m=&x=1"),
        ("https://a.example/?n={$profile.none}", "https://a.example/?n="),
        ("https://a.example/?e={$profile.empty}", "https://a.example/?e="),
        ("https://a.example/?k={$profile.count}", "https://a.example/?k=3"),
        ("https://a.example/{$profile.tag}", "https://a.example/%7B%24profile.id%7D"),
        ("https://a.example/{$profile.name }", "https://a.example/{$profile.name }"),
        ("https://a.example/{$account.id}", "https://a.example/{$account.id}"),
        ("https://a.example/{$profile.}", "https://a.example/{$profile.}"),
        ("{$profile.id}{$profile.id}", "4242"),
    ],
)
def test_personalise(url: str, expected: str) -> None:
    fields: dict[str, object] = {
        "id": "7",
        "profile.id": "42",
        "subprofile.id": "sub-7",
        "name": "Jan & Pi\u00ebt/2",
        "profile.city": "Delft",
        "city": "Leiden",
        "none": None,
        "profile.empty": "",
        "empty": "fallback",
        "count": 3,
        "tag": "{$profile.id}",
    }
    assert personalise(url, fields) == expected


def test_personalise_returns_a_url_without_tags_as_is() -> None:
    url = "https://a.example/?q=" + "x" * 50
    assert personalise(url, {"x": "y"}) is url


# Self-contained pieces of email HTML, each with its tracked links (as written, as URL).
FRAGMENTS: list[tuple[str, list[tuple[str, str]]]] = [
    ('<a href="https://a.example/1">one</a>', [("https://a.example/1", "https://a.example/1")]),
    (
        "<A HREF='HTTP://b.example/?q=1&amp;r=2'>",
        [("HTTP://b.example/?q=1&amp;r=2", "HTTP://b.example/?q=1&r=2")],
    ),
    (
        "<area shape=rect href=https://c.example/3>",
        [("https://c.example/3", "https://c.example/3")],
    ),
    (
        '<a class=x href=" https://d.example/{$profile.id} ">',
        [(" https://d.example/{$profile.id} ", "https://d.example/{$profile.id}")],
    ),
    ('<a\r\nhref="https://e.example/">', [("https://e.example/", "https://e.example/")]),
    ('<a href="mailto:x@example.com">mail</a>', []),
    ('<a href="#top">top</a>', []),
    ('<a title="href=https://fake.example/" href="/rel">', []),
    ('<!-- <a href="https://hidden.example/"> -->', []),
    ('<!--[if mso]><a href="https://mso.example/">x</a><![endif]-->', []),
    ("<!--[if !mso]><!-- -->", []),
    ("<!--<![endif]-->", []),
    ("<script>var s = \"<a href='https://s.example/'>\";</script>", []),
    ('<style>a[href^="https://st.example/"] { color: red }</style>', []),
    ("<![bogus[ ]]>", []),
    ("<!DOCTYPE html>", []),
    ('<table width="100%"><tr><td>', []),
    ("</td></tr></table>", []),
    ("Gr\u00fc\u00dfe \U0001f337 &amp; &nbsp;\r\n", []),
    ("\n\n", []),
    ("</body>", []),
]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12))
def test_extract_and_render_any_arrangement_of_fragments(
    fragments: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    template = "".join(text for text, _ in fragments)
    links = extract_links(template)
    assert [link.url for link in links] == [url for _, spans in fragments for _, url in spans]

    expected = []
    for text, spans in fragments:
        for raw, _ in spans:
            text = replace_once(text, raw, "T")
        expected.append(text)
    replacements = [(link.start, link.end, "T") for link in links]
    assert render(template, replacements, None) == "".join(expected)


HTMLISH = st.lists(
    st.sampled_from(list("<>!-[]/=\"' &#;ahrefbodyAHREFtps:x\r\n\u00e9\U0001f337"))
    | st.sampled_from(["<a ", "href=", "https://", "<!--", "-->", "<script>", "</body", "&amp;"]),
    max_size=60,
).map("".join)


@given(st.one_of(st.text(max_size=200), HTMLISH))
def test_extract_links_never_raises_and_spans_hold_their_urls(text: str) -> None:
    links = extract_links(text)
    done = 0
    for link in links:
        assert done <= link.start <= link.end <= len(text)
        assert htmllib.unescape(text[link.start : link.end]).strip() == link.url
        assert link.url[:8].lower().startswith(("http://", "https://"))
        done = link.end


@given(st.one_of(st.text(max_size=200), HTMLISH))
def test_render_without_edits_is_the_identity(text: str) -> None:
    assert render(text, [], None) == text
