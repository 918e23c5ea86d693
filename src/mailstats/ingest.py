"""Events reported by the sending pipeline: JSON objects and raw report emails into Events.

Shared by the HTTP endpoints and the CLI, so both accept exactly the same input.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mailstats.errors import InvalidParameter
from mailstats.kinds import KINDS, Kind
from mailstats.reports import (
    REASONS,
    BounceEvent,
    DeliveryEvent,
    NotABounce,
    Report,
    ReportError,
    ReportEvents,
    classify,
    parse_report,
)
from mailstats.reports.maillog import Outcome
from mailstats.reports.ses import parse_ses
from mailstats.store import Account, Destination, Event, Store, suppressions
from mailstats.timefmt import format_time, parse_time

REPORTED = ("deliveries", "errors", "abuses")  # the kinds the pipeline reports
_REPORTED_KINDS = {name: KINDS[name] for name in REPORTED}
_CACHE_LIMIT = 100_000  # local hours per zone; about ten years
_WALL_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", re.ASCII)


def event_key(account_id: int, key: object | None) -> bytes:
    """A caller's idempotency key makes a stable event key; without one the key is random."""
    if key is None:
        return secrets.token_bytes(16)
    if not isinstance(key, str) or not 0 < len(key) <= 200:
        raise InvalidParameter("Invalid value for 'key': a string of 1 to 200 characters")
    return hashlib.sha256(f"{account_id}:{key}".encode()).digest()[:16]


def whole_number(value: object) -> int | None:
    """An int, or a float with nothing after the point (PHP's json_encode sends 4.0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return None


def _column_value(name: str, type_: str, value: Any) -> Any:
    if value is None:
        return None
    if type_ == "int":
        number = whole_number(value)
        if number is None or not 0 <= number < 2**31:
            raise InvalidParameter(f"Invalid value for '{name}': a non-negative integer")
        return number
    if type_ == "json":
        if not isinstance(value, dict):
            raise InvalidParameter(f"Invalid value for '{name}': an object")
        return orjson.dumps(value).decode()
    text = value if isinstance(value, str) else whole_number(value)
    if text is None or "\x00" in str(text):
        raise InvalidParameter(f"Invalid value for '{name}': a string without NUL characters")
    return str(text)


def event_from_json(
    store: Store, account: Account, kind: Kind, destination_id: int, data: Any, tz: ZoneInfo
) -> Event:
    """An event of `kind` for one of the account's destinations, from a JSON object."""
    if not isinstance(data, Mapping):
        raise InvalidParameter("Each event must be a JSON object")
    emailing_id = store.destination(account.id, destination_id).emailing_id
    return _event(account.id, kind, emailing_id, destination_id, data, _Times(tz))


def _event(
    account_id: int,
    kind: Kind,
    emailing_id: int,
    destination_id: int,
    data: Mapping[str, Any],
    times: _Times,
) -> Event:
    """The event a JSON object describes."""
    raw_ts = data.get("timestamp")
    if raw_ts is None:
        ts = int(time.time())
    elif isinstance(raw_ts, str):
        ts = times.read(raw_ts)
    else:
        raise InvalidParameter(
            "Invalid value for parameter 'timestamp': a 'YYYY-MM-DD HH:MM:SS' string"
        )
    values = tuple(_column_value(c.name, c.type, data.get(c.name)) for c in kind.columns)
    if kind.name == "deliveries" and values[0] is None:
        values = (1,)
    if kind.name == "errors":
        values = (*values[:4], _reason(values[4], values[0], values[2]))
    key = event_key(account_id, data.get("key"))
    return Event(kind, key, ts, account_id, emailing_id, destination_id, 0, values)


def _reason(given: str | None, status: str | None, description: str | None) -> str:
    """A reported error's reason: the one given, else what its status and words say."""
    if given is None:
        return classify.reason(status or "", description or "")
    if given not in REASONS:
        raise InvalidParameter(f"Invalid value for 'reason': one of {', '.join(REASONS)}")
    return given


class _Times:
    """Timestamps in one zone, as parse_time reads them, each local hour worked out once.

    In an hour whose offset does not change, a time is the hour's start plus its minutes
    and seconds. Anything else (an hour with a clock change, a time that is malformed or
    does not exist) goes to parse_time, which also words every error.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        # "YYYY-MM-DD HH" -> its start if steady, shared by the requests in this zone
        self.hours = _STEADY_HOURS.setdefault(tz, {})

    def read(self, value: str) -> int:
        if _WALL_TIME.fullmatch(value) is not None:
            hour, minute, second = value[:13], value[14:16], value[17:]
            try:
                start = self.hours[hour]
            except KeyError:
                start = self._steady_start(hour)
            if start is not None and minute < "60" and second < "60":
                return start + int(minute) * 60 + int(second)
        return parse_time(value, self.tz, "timestamp")

    def _steady_start(self, hour: str) -> int | None:
        steady: int | None = None
        try:
            start = parse_time(f"{hour}:00:00", self.tz, "timestamp")
            # An offset changes at most once within an hour (as in timefmt), so ends
            # 3599 s apart mean one offset, and no gap or repeat, throughout.
            if parse_time(f"{hour}:59:59", self.tz, "timestamp") == start + 3599:
                steady = start
        except InvalidParameter:
            pass  # no such hour: each time of it goes to parse_time for its error
        if len(self.hours) >= _CACHE_LIMIT:
            self.hours.clear()
        self.hours[hour] = steady
        return steady


_STEADY_HOURS: dict[ZoneInfo, dict[str, int | None]] = {}


def events_from_ndjson(
    store: Store, account: Account, lines: Iterable[bytes], tz: ZoneInfo
) -> list[Event]:
    """Events from NDJSON lines of {"kind", "destination", ...}; errors name the line.

    Every line is checked, then all their destinations are looked up in one query. The
    error is the one a line-by-line check would raise first: the earliest failing line,
    and on a line that fails twice, an unknown destination before anything else.
    """
    events: list[tuple[int, Event]] = []  # (line number, event), emailings not known yet
    failure: tuple[int, int | None, str] | None = None  # (line, its destination, message)
    times = _Times(tz)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        dest = None
        try:
            kind, dest, data = _line(line)
            events.append((number, _event(account.id, kind, 0, dest, data, times)))
        except InvalidParameter as exc:
            failure = (number, dest, exc.message)
            break
    wanted = {event.destination_id for _, event in events}
    if failure is not None and failure[1] is not None:
        wanted.add(failure[1])
    emailings = store.destination_emailings(account.id, wanted)
    for number, event in events:
        emailing_id = emailings.get(event.destination_id)
        if emailing_id is None:
            raise InvalidParameter(f"Line {number}: No entity with supplied ID")
        event.emailing_id = emailing_id
    if failure is not None:
        number, dest, message = failure
        if dest is not None and dest not in emailings:
            message = "No entity with supplied ID"
        raise InvalidParameter(f"Line {number}: {message}")
    return [event for _, event in events]


def _line(line: bytes) -> tuple[Kind, int, dict[str, Any]]:
    """One NDJSON line read and its kind and destination checked."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidParameter("not a JSON object")
    name = data.get("kind")
    kind = _REPORTED_KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidParameter(f"'kind' must be one of {', '.join(REPORTED)}")
    dest = data.get("destination")
    if isinstance(dest, bool) or not isinstance(dest, int | str) or not str(dest).isdecimal():
        raise InvalidParameter("'destination' must be a destination ID")
    return kind, int(dest), data


class Unmatched(InvalidParameter):
    """A report that was read but names no destination of this account."""


@dataclass(frozen=True)
class Taken:
    """What one report email came to: the events it held and how many were new."""

    stored: int = 0  # newly stored (a report seen before stores nothing again)
    events: int = 0  # the events it holds, one per destination and kind
    not_a_bounce: str = ""  # why nothing was recorded: an auto-reply, a delivery notice
    reasons: tuple[str, ...] = ()  # of its errors, in order


def _destination_for(store: Store, account: Account, identifiers: Iterable[str]) -> int | None:
    """The account's destination named by a Message-ID (<key@host>) or a VERP tag (key)."""
    for identifier in identifiers:
        key = identifier.strip().strip("<>").partition("@")[0]
        if key:
            found = store.destination_by_message_key(account.id, key)
            if found is not None:
                return found
    return None


def _recipient_destination(store: Store, account: Account, named: Destination, item: Report) -> int:
    """The destination one recipient of a report stands for: the one its identifiers name,
    or another of the same emailing with the recipient's address (a bounce that lists
    several recipients of one mailing)."""
    recipient = (item.recipient or "").strip()
    if not recipient or recipient.lower() == named.email.lower():
        return named.id
    other = store.destination_by_email(account.id, named.emailing_id, recipient)
    return other if other is not None else named.id


def _item_event(account_id: int, dest: Destination, item: Report, digest: str, ts: int) -> Event:
    if isinstance(item, BounceEvent):
        data: dict[str, Any] = {
            "status": item.status, "errorcode": item.errorcode,
            "description": item.description, "errortype": item.errortype,
            "reason": item.reason,
        }  # fmt: skip
        kind = KINDS["errors"]
    elif isinstance(item, DeliveryEvent):
        data = {"attempts": item.attempts}
        kind = KINDS["deliveries"]
    else:
        data = {"report": item.report}
        kind = KINDS["abuses"]
    values = tuple(_column_value(c.name, c.type, data.get(c.name)) for c in kind.columns)
    # The same report ingested twice is one event: its key comes from its content.
    key = event_key(account_id, f"{digest}:{dest.id}:{kind.name}")
    return Event(kind, key, ts, account_id, dest.emailing_id, dest.id, 0, values)


def _read(parse: Callable[[], ReportEvents]) -> ReportEvents:
    """The parsed report; InvalidParameter for anything that is not one."""
    try:
        return parse()
    except NotABounce:
        raise
    except ReportError as exc:
        raise InvalidParameter(f"Invalid report: {exc}") from None


def report_events(
    store: Store, account: Account, parsed: ReportEvents, raw: bytes
) -> tuple[list[Event], tuple[str, ...]]:
    """Events from one parsed report, one per destination and kind (the first a report
    gives for each), with the reasons of its errors; nothing is stored here."""
    digest = hashlib.sha256(raw).hexdigest()
    events: dict[bytes, Event] = {}
    reasons = []
    named_by: dict[tuple[str, ...], Destination] = {}
    for item in parsed:
        named = named_by.get(item.identifiers)
        if named is None:
            dest_id = _destination_for(store, account, item.identifiers)
            if dest_id is None:
                raise Unmatched("Invalid report: it names no destination of this account")
            named = named_by[item.identifiers] = store.destination(account.id, dest_id)
        dest_id = _recipient_destination(store, account, named, item)
        dest = named if dest_id == named.id else store.destination(account.id, dest_id)
        ts = int(item.timestamp.timestamp()) if item.timestamp else int(time.time())
        event = _item_event(account.id, dest, item, digest, ts)
        if event.key not in events:
            events[event.key] = event
            if isinstance(item, BounceEvent):
                reasons.append(item.reason)
    return list(events.values()), tuple(reasons)


def ingest_report(store: Store, account: Account, raw: bytes) -> Taken:
    """Parse and store one report email: what it held and how much of it was new.

    An auto-reply or a delivery notice stores nothing and says why in `not_a_bounce`;
    anything unreadable raises InvalidParameter (Unmatched when it names no destination).
    """
    return _take(store, account, lambda: parse_report(raw), raw)


def ingest_sns(store: Store, account: Account, message: dict[str, Any]) -> Taken:
    """Store the SES event of one SNS notification whose signature has been checked."""
    raw = orjson.dumps([message.get("MessageId"), message.get("Message")])
    return _take(store, account, lambda: [*parse_ses(message)], raw)


def _take(store: Store, account: Account, parse: Callable[[], ReportEvents], raw: bytes) -> Taken:
    try:
        parsed = _read(parse)
    except NotABounce as exc:
        return Taken(not_a_bounce=str(exc))
    events, reasons = report_events(store, account, parsed, raw)
    return Taken(store.insert_events(events), len(events), reasons=reasons)


def maillog_event(store: Store, account: Account, outcome: Outcome, tz: ZoneInfo) -> Event | None:
    """The event of one MTA log outcome, through the same checks as POST ms/destination/$id/...

    Its destination is the one the queue's Message-ID names (<key@host>, as the API's
    headers give it) or its envelope sender (the VERP bounce address, bounces+key@domain,
    as the relay sets it); None when neither names one of the account's destinations for
    that recipient (such as a message on its way into the relay).
    """
    names = [outcome.message_id or ""]
    local = (outcome.sender or "").rpartition("@")[0]
    if local.startswith("bounces+"):
        names.append(local[len("bounces+") :])
    dest_id = _destination_for(store, account, [n for n in names if n])
    if dest_id is None:
        return None
    dest = store.destination(account.id, dest_id)
    if suppressions.normal(dest.email) != suppressions.normal(outcome.recipient):
        return None
    line_hash = hashlib.sha256(outcome.line.encode("utf-8", "surrogateescape")).hexdigest()
    data: dict[str, Any] = {"timestamp": format_time(outcome.ts, tz), "key": f"maillog:{line_hash}"}
    if outcome.kind == "deliveries":
        data["attempts"] = outcome.attempts
    else:
        data |= {
            "status": outcome.status,
            "errorcode": outcome.errorcode,
            "description": outcome.description,
            "errortype": outcome.errortype,
        }
    return _event(account.id, KINDS[outcome.kind], dest.emailing_id, dest_id, data, _Times(tz))


def report_account(store: Store, raw: bytes) -> Account | None:
    """The account a report email belongs to, found from the message it names (its
    Message-ID or VERP tag holds the destination's message key, unique across accounts).

    None for an auto-reply or a delivery notice (not a bounce: nothing to store); raises
    Unmatched when it names no known destination, InvalidParameter when it is unreadable.
    """
    try:
        parsed = _read(lambda: parse_report(raw))
    except NotABounce:
        return None
    for item in parsed:
        for identifier in item.identifiers:
            key = identifier.strip().strip("<>").partition("@")[0]
            found = store.charts.destination_by_key(key) if key else None
            if found is not None:
                return found[1]
    raise Unmatched("Invalid report: it names no known destination")


def not_a_bounce(raw: bytes) -> str:
    """Why a message is not a bounce ("" when it is one, or unreadable)."""
    try:
        parse_report(raw)
    except NotABounce as exc:
        return str(exc)
    except ReportError:
        return ""
    return ""
