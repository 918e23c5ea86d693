"""Query parsing for the v2 API: compat.md sections 1, 2 and 4, one rule at a time."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailstats.errors import InvalidParameter
from mailstats.timefmt import format_time, parse_time
from mailstats.web.params import (
    Condition,
    FieldType,
    ListParams,
    Paging,
    Query,
    parse_bool,
    parse_condition,
    parse_int,
    parse_list_params,
    parse_paging,
    parse_query,
    scalar,
)

AMS = ZoneInfo("Europe/Amsterdam")
ZONES = ["Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
CLICK_FIELDS: dict[str, FieldType] = {
    "ID": "id",
    "mailing": "id",
    "timestamp": "time",
    "link": "text",
    "ip": "text",
}
INT64_MAX = 2**63 - 1
# Text a client could put in a query string (PHP cannot send NUL or lone surrogates either).
QUERY_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
# Digits that str.isdigit() and \\d accept but the API does not.
ARABIC_INDIC = str.maketrans({str(d): chr(0x0660 + d) for d in range(10)})
FULLWIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def raises_naming(name: str) -> AbstractContextManager[pytest.ExceptionInfo[InvalidParameter]]:
    return pytest.raises(InvalidParameter, match=rf"^Invalid value for parameter '{name}'")


# --- parse_query --------------------------------------------------------------------------


def test_plain_keys_and_values() -> None:
    assert parse_query(b"access_token=abc&limit=5") == {"access_token": ["abc"], "limit": ["5"]}


def test_empty_query() -> None:
    assert parse_query(b"") == {}


def test_plus_is_space_and_encoded_plus_is_plus() -> None:
    query = parse_query(b"begintime=2024-01-01+00%3A00%3A00&q=a%2Bb")
    assert query == {"begintime": ["2024-01-01 00:00:00"], "q": ["a+b"]}


def test_keys_are_case_sensitive() -> None:
    assert parse_query(b"LIMIT=5&limit=6") == {"LIMIT": ["5"], "limit": ["6"]}


def test_php_encoded_array() -> None:
    query = parse_query(b"fields%5B0%5D=ID%3E5&fields%5B1%5D=ID%3C9")
    assert query == {"fields": ["ID>5", "ID<9"]}
    assert query.arrays == {"fields"}


def test_plain_brackets_array() -> None:
    query = parse_query(b"fields[]=ID>5&fields[]=ID<9")
    assert query == {"fields": ["ID>5", "ID<9"]}
    assert query.arrays == {"fields"}


def test_any_index_collects_under_the_name() -> None:
    query = parse_query(b"fields[0]=a&fields[x]=b&fields=c")
    assert query == {"fields": ["a", "b", "c"]}


def test_what_php_http_build_query_sends() -> None:
    php = urlencode({"unique": 1, "total": 0, "fields[0]": "ID>5", "fields[1]": "ip=~10.%"})
    query = parse_query(php.encode())
    assert query == {"unique": ["1"], "total": ["0"], "fields": ["ID>5", "ip=~10.%"]}


def test_repeated_plain_keys_append_without_becoming_arrays() -> None:
    query = parse_query(b"a=1&a=2")
    assert query == {"a": ["1", "2"]}
    assert query.arrays == set()


def test_not_an_array_key() -> None:
    query = parse_query(b"a[=1&[]=2&b]=3")
    assert query == {"a[": ["1"], "[]": ["2"], "b]": ["3"]}
    assert query.arrays == set()


def test_empty_pairs_are_skipped() -> None:
    assert parse_query(b"&&a=1&&=x&") == {"a": ["1"]}


def test_key_without_equals_has_empty_value() -> None:
    assert parse_query(b"a&b=") == {"a": [""], "b": [""]}


def test_only_the_first_equals_splits() -> None:
    assert parse_query(b"fields[]=ID==5") == {"fields": ["ID==5"]}


def test_utf8_is_decoded() -> None:
    assert parse_query(b"q=caf%C3%A9&r=caf\xc3\xa9") == {"q": ["café"], "r": ["café"]}


@pytest.mark.parametrize(
    "raw",
    [b"a=%zz", b"a=%4", b"a=%", b"a=1%", b"%zz=1", b"a%5=1", b"a=%g0"],
)
def test_bad_percent_encoding(raw: bytes) -> None:
    with pytest.raises(InvalidParameter, match=r"^Invalid query string: "):
        parse_query(raw)


@pytest.mark.parametrize(
    "raw",
    [b"a=%ff", b"a=%C3", b"a=\xff", b"%ff=1", b"a=%ED%A0%80", b"a=%C0%AF"],
)
def test_not_utf8(raw: bytes) -> None:
    with pytest.raises(InvalidParameter, match=r"^Invalid query string: "):
        parse_query(raw)


def test_nul_is_refused() -> None:
    with pytest.raises(InvalidParameter, match=r"^Invalid query string: "):
        parse_query(b"a=x%00y")


@given(st.dictionaries(QUERY_TEXT.filter(lambda k: "[" not in k), QUERY_TEXT, max_size=5))
def test_urlencode_round_trips(params: dict[str, str]) -> None:
    expected = {k: [v] for k, v in params.items() if k}
    assert parse_query(urlencode(params).encode()) == expected


# --- scalar -------------------------------------------------------------------------------


def test_scalar_single_and_absent() -> None:
    query = parse_query(b"limit=5")
    assert scalar(query, "limit") == "5"
    assert scalar(query, "start") is None


def test_scalar_repeated_is_refused() -> None:
    with raises_naming("limit"):
        scalar(parse_query(b"limit=5&limit=6"), "limit")


@pytest.mark.parametrize("raw", [b"limit[]=5", b"limit%5B0%5D=5", b"limit[x]=5"])
def test_scalar_array_is_refused(raw: bytes) -> None:
    with raises_naming("limit"):
        scalar(parse_query(raw), "limit")


def test_scalar_takes_a_plain_dict() -> None:
    assert scalar({"limit": ["5"]}, "limit") == "5"
    assert scalar(Query({"limit": ["5"]}, arrays={"start"}), "limit") == "5"


# --- parse_bool ---------------------------------------------------------------------------

TRUE = ["true", "TRUE", "True", "yes", "YES", "Yes", " true ", "1", "2", "-1", "+1", "1.5"]
TRUE += ["10e2", "1e0", "0.1e1", "100e-2", "1.", "00001", " 1 ", "1e99999999999999999999999"]
FALSE = ["", " ", "0", "false", "no", "0.5", "-0.5", "abc", "nan", "inf", "-inf", "on", "y"]
FALSE += [
    "0.99999999999999999999",
    ".5",
    "100e-3",
    "-0",
    "0x1",
    "1_0",
    "1".translate(ARABIC_INDIC),
    "1e",
    "e1",
    ".",
]
FALSE += ["truey", "yes please", "1e-99999999999999999999999"]


@pytest.mark.parametrize("value", TRUE)
def test_true_values(value: str) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", FALSE)
def test_false_values(value: str) -> None:
    assert parse_bool(value) is False


@given(st.text())
def test_parse_bool_never_raises(value: str) -> None:
    assert parse_bool(value) in (True, False)


@given(st.integers())
def test_parse_bool_on_integers(number: int) -> None:
    assert parse_bool(str(number)) is (abs(number) >= 1)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_parse_bool_on_floats(number: float) -> None:
    assert parse_bool(repr(number)) is (abs(number) >= 1)


# --- parse_int and parse_paging -----------------------------------------------------------


def paging(raw: bytes) -> Paging:
    return parse_paging(parse_query(raw))


def test_paging_defaults() -> None:
    assert paging(b"") == Paging(start=0, limit=100, total=True)


def test_paging_given() -> None:
    assert paging(b"start=200&limit=50&total=false") == Paging(200, 50, False)


def test_paging_names_are_case_sensitive() -> None:
    assert paging(b"LIMIT=5&Start=3&TOTAL=0") == Paging(0, 100, True)


@pytest.mark.parametrize(("raw", "limit"), [(b"1000", 1000), (b"1001", 1000), (b"99999", 1000)])
def test_limit_is_clamped(raw: bytes, limit: int) -> None:
    assert paging(b"limit=" + raw).limit == limit


def test_negatives_are_echoed() -> None:
    page = paging(b"start=-5&limit=-7")
    assert (page.start, page.limit) == (-5, -7)
    assert page.empty


@pytest.mark.parametrize(
    ("page", "empty"),
    [
        (Paging(0, 100, True), False),
        (Paging(0, 1, True), False),
        (Paging(0, 0, True), True),
        (Paging(-1, 100, True), True),
        (Paging(0, -1, True), True),
    ],
)
def test_paging_empty(page: Paging, empty: bool) -> None:
    assert page.empty is empty


@pytest.mark.parametrize(("raw", "total"), [(b"0", False), (b"1", True), (b"no", False)])
def test_total_is_a_boolean(raw: bytes, total: bool) -> None:
    assert paging(b"total=" + raw).total is total


@pytest.mark.parametrize(
    ("value", "number"),
    [("0", 0), ("+5", 5), ("-5", -5), ("007", 7), (str(INT64_MAX), INT64_MAX)],
)
def test_parse_int(value: str, number: int) -> None:
    assert parse_int(value, "start") == number


def test_parse_int_lower_bound_and_leading_zeros() -> None:
    assert parse_int(str(-(2**63)), "start") == -(2**63)
    assert parse_int("0" * 50 + "12", "start") == 12


BAD_INTEGERS = ["", "+", "-", "abc", "1.5", "1e3", " 5", "5 ", "5\n", "1 0", "0x10", "1_000"]
BAD_INTEGERS += [
    "12".translate(ARABIC_INDIC),
    "12".translate(FULLWIDTH),
    "\N{SUPERSCRIPT TWO}",
    str(2**63),
    str(-(2**63) - 1),
    "9" * 5000,
]


@pytest.mark.parametrize("value", BAD_INTEGERS)
@pytest.mark.parametrize("name", ["start", "limit"])
def test_bad_paging_integers(name: str, value: str) -> None:
    with raises_naming(name):
        parse_paging(Query({name: [value]}))


@pytest.mark.parametrize("raw", [b"limit=1&limit=2", b"start[]=1", b"total[]=1"])
def test_paging_refuses_arrays_and_repeats(raw: bytes) -> None:
    with pytest.raises(InvalidParameter):
        paging(raw)


INTEGER_LIKE = st.integers(min_value=-(2**65), max_value=2**65).map(str)
PAGING_VALUES = INTEGER_LIKE | QUERY_TEXT | st.from_regex(r"[+-]?[0-9]{1,25}", fullmatch=True)


def valid_int64(value: str) -> bool:
    if re.fullmatch(r"[+-]?[0-9]+", value) is None:
        return False
    return -(2**63) <= int(value) <= INT64_MAX


@given(start=PAGING_VALUES, limit=PAGING_VALUES)
@settings(max_examples=300)
def test_paging_either_refuses_or_follows_the_rules(start: str, limit: str) -> None:
    raw = urlencode({"start": start, "limit": limit}).encode()
    try:
        page = paging(raw)
    except InvalidParameter as error:
        bad = [n for n, v in (("start", start), ("limit", limit)) if not valid_int64(v)]
        assert bad, "refused valid values"
        assert re.match(rf"^Invalid value for parameter '({'|'.join(bad)})'", error.message)
        return
    assert valid_int64(start)
    assert valid_int64(limit)
    assert page == Paging(int(start), min(int(limit), 1000), True)


# --- parse_time and format_time -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2024-01-15 10:00:00", utc(2024, 1, 15, 9)),  # CET, UTC+1
        ("2024-07-15 10:00:00", utc(2024, 7, 15, 8)),  # CEST, UTC+2
        ("2024-07-15", utc(2024, 7, 14, 22)),
        ("2024-07-15T10:00:00", utc(2024, 7, 15, 8)),
        (" 2024-07-15 10:00:00 ", utc(2024, 7, 15, 8)),
        ("2024-02-29 23:59:59", utc(2024, 2, 29, 22, 59, 59)),
        ("2024-10-27 02:30:00", utc(2024, 10, 27, 0, 30)),  # ambiguous: the first (CEST)
    ],
)
def test_parse_time_in_amsterdam(value: str, epoch: int) -> None:
    assert parse_time(value, AMS, "begintime") == epoch


def test_parse_time_in_other_zones() -> None:
    assert parse_time("2024-01-01 00:00:00", ZoneInfo("UTC"), "x") == utc(2024, 1, 1)
    assert parse_time("2024-01-01 05:30:00", ZoneInfo("Asia/Kolkata"), "x") == utc(2024, 1, 1)
    new_york = ZoneInfo("America/New_York")
    assert parse_time("2024-11-03 01:30:00", new_york, "x") == utc(2024, 11, 3, 5, 30)


BAD_TIMES = ["", " ", "2024-02-30 10:00:00", "9999-99-99", "2023-02-29", "2024-13-01"]
BAD_TIMES += ["2024-01-01 24:00:00", "2024-01-01 10:60:00", "2024-01-01 10:00:60", "0000-01-01"]
BAD_TIMES += ["2024-1-1", "2024-01-01 10:00", "2024/01/01", "2024-01-01 10:00:00Z", "20240101"]
BAD_TIMES += ["2024-01-01 10:00:00.5", "2024-01-01  10:00:00", "yesterday", "1704067200"]
BAD_TIMES += ["2024-01-01\n10:00:00", "2024-01-01 10:00:00".translate(ARABIC_INDIC)]
BAD_TIMES += ["2024-01-01".translate(FULLWIDTH), "2024-01-01 1\N{ARABIC-INDIC DIGIT ZERO}:00:00"]


@pytest.mark.parametrize("value", BAD_TIMES)
def test_bad_times(value: str) -> None:
    with raises_naming("endtime"):
        parse_time(value, AMS, "endtime")


@pytest.mark.parametrize(
    ("epoch", "zone", "text"),
    [
        (utc(2024, 7, 15, 8), "Europe/Amsterdam", "2024-07-15 10:00:00"),
        (utc(2024, 1, 15, 9), "Europe/Amsterdam", "2024-01-15 10:00:00"),
        (utc(2024, 10, 27, 0, 30), "Europe/Amsterdam", "2024-10-27 02:30:00"),
        (utc(2024, 10, 27, 1, 30), "Europe/Amsterdam", "2024-10-27 02:30:00"),
        (utc(2024, 1, 1), "Asia/Kolkata", "2024-01-01 05:30:00"),
        (utc(2024, 1, 1), "Australia/Lord_Howe", "2024-01-01 11:00:00"),
        (utc(2024, 7, 1), "Australia/Lord_Howe", "2024-07-01 10:30:00"),
        (0, "UTC", "1970-01-01 00:00:00"),
        (-1, "UTC", "1969-12-31 23:59:59"),
    ],
)
def test_format_time_examples(epoch: int, zone: str, text: str) -> None:
    assert format_time(epoch, ZoneInfo(zone)) == text


def reference(epoch: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, tz).isoformat(sep=" ")[:19]


@given(
    epoch=st.integers(min_value=-2_500_000_000, max_value=7_000_000_000),
    zone=st.sampled_from(ZONES),
)
@settings(max_examples=2000)
def test_format_time_agrees_with_datetime(epoch: int, zone: str) -> None:
    tz = ZoneInfo(zone)
    assert format_time(epoch, tz) == reference(epoch, tz)


def transitions(tz: ZoneInfo, year: int) -> list[int]:
    """Epochs just after each change of UTC offset in ``year``, found to the minute."""
    start = utc(year, 1, 1)
    found = []
    previous = datetime.fromtimestamp(start, tz).utcoffset()
    for minute in range(0, 366 * 24 * 60, 15):
        offset = datetime.fromtimestamp(start + minute * 60, tz).utcoffset()
        if offset != previous:
            found.append(start + minute * 60)
        previous = offset
    return found


@pytest.mark.parametrize(
    ("zone", "count"),
    [("Europe/Amsterdam", 2), ("America/New_York", 2), ("Australia/Lord_Howe", 2)],
)
def test_format_time_around_dst_transitions(zone: str, count: int) -> None:
    tz = ZoneInfo(zone)
    for year in (2023, 2024):
        changes = transitions(tz, year)
        assert len(changes) == count
        for change in changes:
            for epoch in range(change - 7200, change + 7200, 7):
                assert format_time(epoch, tz) == reference(epoch, tz), epoch


def test_format_time_around_kolkatas_wartime_changes() -> None:
    tz = ZoneInfo("Asia/Kolkata")
    changes = [change for year in range(1941, 1946) for change in transitions(tz, year)]
    assert changes
    for change in changes:
        for epoch in range(change - 7200, change + 7200, 7):
            assert format_time(epoch, tz) == reference(epoch, tz), epoch


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    zone=st.sampled_from(ZONES),
)
def test_parse_time_agrees_with_datetime(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    # a wall time says nothing of fold: a repeated hour means its first pass, as in datetime
    moment = moment.replace(microsecond=0, fold=0)
    expected = int(moment.replace(tzinfo=tz).timestamp())
    assert parse_time(moment.isoformat(sep=" "), tz, "begintime") == expected


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)),
    zone=st.sampled_from(ZONES),
)
def test_format_undoes_parse_outside_gaps(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    text = moment.replace(microsecond=0).isoformat(sep=" ")
    epoch = parse_time(text, tz, "begintime")
    aware = moment.replace(tzinfo=tz)
    in_gap = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != aware.replace(tzinfo=None)
    assert (format_time(epoch, tz) == text) is not in_gap


# --- parse_condition ----------------------------------------------------------------------


def condition(expr: str) -> Condition:
    return parse_condition(expr, CLICK_FIELDS, AMS)


@pytest.mark.parametrize(
    ("expr", "op"),
    [
        ("ID==5", "="),
        ("ID=5", "="),
        ("ID!=5", "!="),
        ("ID<>5", "!="),
        ("ID<5", "<"),
        ("ID>5", ">"),
        ("ID<=5", "<="),
        ("ID>=5", ">="),
    ],
)
def test_operators(expr: str, op: str) -> None:
    assert condition(expr) == Condition("ID", op, 5)


@pytest.mark.parametrize(("expr", "op"), [("link=~%shop%", "LIKE"), ("link!~%shop%", "NOT LIKE")])
def test_like_operators_on_text(expr: str, op: str) -> None:
    assert condition(expr) == Condition("link", op, "%shop%")


def test_spaces_around_parts() -> None:
    assert condition("  ID  >=  12345 ") == Condition("ID", ">=", 12345)


def test_id_value_limits() -> None:
    assert condition(f"ID<={INT64_MAX}").value == INT64_MAX
    assert condition("mailing>-3") == Condition("mailing", ">", -3)


def test_time_value_is_a_utc_epoch() -> None:
    expected = Condition("timestamp", ">=", utc(2024, 6, 30, 22))
    assert condition("timestamp>=2024-07-01 00:00:00") == expected


def test_text_value_is_raw() -> None:
    assert condition("link==https://x.nl/?a=b") == Condition("link", "=", "https://x.nl/?a=b")
    assert condition("ip==' OR 1=1 --") == Condition("ip", "=", "' OR 1=1 --")
    assert condition("link==") == Condition("link", "=", "")


def test_unknown_field_message() -> None:
    message = "Invalid value for parameter 'fields': unknown field 'id'"
    with pytest.raises(InvalidParameter, match=f"^{re.escape(message)}$"):
        condition("id>5")


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "ID",
        ">5",
        "ID!5",
        "ID~5",
        "ID=<5",
        "ID>abc",
        "ID>1.5",
        "ID>",
        "ID>" + "12".translate(ARABIC_INDIC),
        f"ID>{2**63}",
        "timestamp>=2024-02-30 00:00:00",
        "timestamp>=" + "2024-01-01".translate(ARABIC_INDIC),
        "timestamp>=yesterday",
        "ID=~5",
        "ID!~5",
        "timestamp=~2024%",
        "useragent==x",
    ],
)
def test_bad_conditions(expr: str) -> None:
    with raises_naming("fields"):
        condition(expr)


# --- parse_list_params --------------------------------------------------------------------


def list_params(raw: bytes) -> ListParams:
    return parse_list_params(parse_query(raw), AMS, CLICK_FIELDS)


def test_list_defaults() -> None:
    assert list_params(b"access_token=x") == ListParams(Paging(0, 100, True), None, None, False, ())


def test_list_from_php_client() -> None:
    raw = urlencode(
        {
            "begintime": "2024-01-01 00:00:00",
            "endtime": "2024-01-31 23:59:59",
            "unique": 1,
            "total": 0,
            "limit": 1000,
            "fields[0]": "ID>12345",
            "fields[1]": "link=~%shop%",
        }
    ).encode()
    assert b"fields%5B0%5D=" in raw
    assert list_params(raw) == ListParams(
        paging=Paging(0, 1000, False),
        begin=utc(2023, 12, 31, 23),
        end=utc(2024, 1, 31, 22, 59, 59),
        unique=True,
        conditions=(Condition("ID", ">", 12345), Condition("link", "LIKE", "%shop%")),
    )


def test_list_with_plain_brackets_and_scalar_fields() -> None:
    raw = b"fields[]=ID%3E5&fields[]=timestamp%3C2024-01-01&unique=yes"
    expected = (Condition("ID", ">", 5), Condition("timestamp", "<", utc(2023, 12, 31, 23)))
    params = list_params(raw)
    assert params.conditions == expected
    assert params.unique is True
    assert list_params(b"fields=ID%3E5").conditions == (Condition("ID", ">", 5),)


def test_begin_and_end_are_independent() -> None:
    assert list_params(b"endtime=2024-01-01").begin is None
    # a date alone as an upper bound is the whole day: 23:59:59 in Amsterdam
    assert list_params(b"endtime=2024-01-01").end == utc(2024, 1, 1, 22, 59, 59)
    assert list_params(b"begintime=2024-01-01").end is None


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"begintime=tomorrow", "begintime"),
        (b"endtime=2024-02-30+00:00:00", "endtime"),
        (b"begintime[]=2024-01-01", "begintime"),
        (b"unique=1&unique=0", "unique"),
        (b"fields[]=", "fields"),
        (b"fields[]=ID%3E5&fields[]=nope%3E5", "fields"),
        (b"limit=ten", "limit"),
    ],
)
def test_list_errors_name_the_parameter(raw: bytes, name: str) -> None:
    with raises_naming(name):
        list_params(raw)


def test_unknown_parameters_are_ignored() -> None:
    assert list_params(b"UNIQUE=1&Fields[]=bogus&foo=bar") == list_params(b"")


def test_times_use_the_given_zone() -> None:
    query = parse_query(b"begintime=2024-01-01")
    assert parse_list_params(query, ZoneInfo("UTC"), {}).begin == utc(2024, 1, 1)
    assert parse_list_params(query, AMS, {}).begin == utc(2023, 12, 31, 23)
