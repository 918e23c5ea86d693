"""Events reported by the sending pipeline: JSON objects and raw report emails into Events.

Shared by the HTTP endpoints and the CLI, so both accept exactly the same input.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from mailstats.errors import InvalidParameter, NotFound
from mailstats.kinds import KINDS, Kind
from mailstats.reports import BounceEvent, ReportError, parse_report
from mailstats.store import Account, Event, Store
from mailstats.timefmt import parse_time

REPORTED = ("deliveries", "errors", "abuses")  # the kinds the pipeline reports


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


def _column_value(kind: Kind, name: str, type_: str, value: Any) -> Any:
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
    store: Store,
    account: Account,
    kind: Kind,
    destination_id: int,
    data: Any,
    tz: ZoneInfo,
    known: dict[int, int] | None = None,
) -> Event:
    """An event of `kind` for one of the account's destinations, from a JSON object.

    `known` maps destination IDs already checked to their emailing, so that a bulk
    import looks each destination up once.
    """
    if not isinstance(data, Mapping):
        raise InvalidParameter("Each event must be a JSON object")
    known = {} if known is None else known
    if destination_id not in known:
        known[destination_id] = store.destination(account.id, destination_id).emailing_id
    emailing_id = known[destination_id]
    raw_ts = data.get("timestamp")
    if raw_ts is None:
        ts = int(time.time())
    elif isinstance(raw_ts, str):
        ts = parse_time(raw_ts, tz, "timestamp")
    else:
        raise InvalidParameter(
            "Invalid value for parameter 'timestamp': a 'YYYY-MM-DD HH:MM:SS' string"
        )
    values = tuple(_column_value(kind, c.name, c.type, data.get(c.name)) for c in kind.columns)
    if kind.name == "deliveries" and values[0] is None:
        values = (1,)
    return Event(
        kind,
        event_key(account.id, data.get("key")),
        ts,
        account.id,
        emailing_id,
        destination_id,
        0,
        values,
    )


def events_from_ndjson(
    store: Store, account: Account, lines: Iterable[bytes], tz: ZoneInfo
) -> Iterator[Event]:
    """Events from NDJSON lines of {"kind", "destination", ...}; errors name the line."""
    known: dict[int, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
            if not isinstance(data, dict):
                raise InvalidParameter("not a JSON object")
            kind = KINDS.get(str(data.get("kind")))
            if kind is None or kind.name not in REPORTED:
                raise InvalidParameter(f"'kind' must be one of {', '.join(REPORTED)}")
            dest = data.get("destination")
            if isinstance(dest, bool) or not isinstance(dest, int | str) or not str(dest).isdigit():
                raise InvalidParameter("'destination' must be a destination ID")
            yield event_from_json(store, account, kind, int(dest), data, tz, known)
        except orjson.JSONDecodeError as exc:
            raise InvalidParameter(f"Line {number}: not valid JSON ({exc.msg})") from None
        except NotFound:
            raise InvalidParameter(f"Line {number}: No entity with supplied ID") from None
        except InvalidParameter as exc:
            raise InvalidParameter(f"Line {number}: {exc.message}") from None


def _destination_for(store: Store, account: Account, identifiers: Iterable[str]) -> int | None:
    """The account's destination named by a Message-ID (<key@host>) or a VERP tag (key)."""
    for identifier in identifiers:
        key = identifier.strip().strip("<>").partition("@")[0]
        if key:
            found = store.destination_by_message_key(account.id, key)
            if found is not None:
                return found
    return None


def report_events(store: Store, account: Account, raw: bytes) -> list[Event]:
    """Events from one DSN (errors) or ARF (abuses) email; nothing is stored here."""
    try:
        parsed = parse_report(raw)
    except ReportError as exc:
        raise InvalidParameter(f"Invalid report: {exc}") from None
    events = []
    for item in parsed:
        dest_id = _destination_for(store, account, item.identifiers)
        if dest_id is None:
            raise InvalidParameter("Invalid report: it names no destination of this account")
        ts = int(item.timestamp.timestamp()) if item.timestamp else int(time.time())
        if isinstance(item, BounceEvent):
            data: dict[str, Any] = {
                "status": item.status, "errorcode": item.errorcode,
                "description": item.description, "errortype": item.errortype,
            }  # fmt: skip
            kind = KINDS["errors"]
        else:
            data = {"report": item.report}
            kind = KINDS["abuses"]
        values = tuple(_column_value(kind, c.name, c.type, data.get(c.name)) for c in kind.columns)
        dest = store.destination(account.id, dest_id)
        # The same report ingested twice is one event: its key comes from its content.
        key = event_key(account.id, hashlib.sha256(raw).hexdigest() + f":{dest_id}:{kind.name}")
        events.append(Event(kind, key, ts, account.id, dest.emailing_id, dest_id, 0, values))
    return events


def ingest_report(store: Store, account: Account, raw: bytes) -> int:
    """Parse and store one report email; return how many events it held."""
    events = report_events(store, account, raw)
    store.insert_events(events)
    return len(events)
