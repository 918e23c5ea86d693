"""`mailstats ingest-maillog [FILE...]`: Postfix's log into deliveries, errors and retries."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import IO, Any
from zoneinfo import ZoneInfo

import click

from mailstats import ingest
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.reports.maillog import MaillogReader
from mailstats.store import Account, Event, Store
from mailstats.store import relay as stored

_BATCH = 500  # events written in one transaction at most
_POLL = 0.5  # seconds between looks at a followed log that did not grow


@click.command(name="ingest-maillog")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--account", required=True, help="The account the messages were sent for.")
@click.option("--follow", is_flag=True, help="Keep reading one growing FILE (rotation too).")
@click.option(
    "--log-timezone",
    help="Zone of the log's times when they carry none (syslog style) [default: this machine's]",
)
@db_option
def ingest_maillog(
    files: tuple[str, ...],
    account: str,
    follow: bool,
    log_timezone: str | None,
    db: str | None,
    config_file: str | None,
) -> None:
    """Read Postfix log lines (standard input without FILE): status=sent is a delivery,
    bounced an error, deferred a retry. --follow remembers where it stopped, in the database.

    Example: mailstats ingest-maillog --account acme --follow /var/log/mail.log
    """
    if follow and (len(files) != 1 or files[0] == "-"):
        raise click.UsageError("--follow reads exactly one FILE")
    settings = load_settings(db=db, config_file=config_file)
    zone = _zone(log_timezone)
    store = open_db(settings)
    try:
        acct = store.account(account)
        tz = ZoneInfo(acct.timezone)
        counted = Counted()
        if follow:
            reader = _follow(store, acct, tz, zone, os.path.abspath(files[0]), counted)
        else:
            reader = MaillogReader(zone)
            for name in files or ("-",):
                with click.open_file(name, "r", encoding="utf-8", errors="replace") as fh:
                    _ingest(store, acct, tz, reader, fh, counted)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    _summary(reader, counted)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or os.environ.get("TZ") or _system_zone() or "UTC")
    except (ValueError, OSError):
        raise click.UsageError(f"Unknown time zone {name!r}") from None


def _system_zone() -> str | None:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None


class Counted:
    """What a run stored and what it could not place."""

    def __init__(self) -> None:
        self.stored = 0
        self.unmatched = 0


def _ingest(
    store: Store,
    acct: Account,
    tz: ZoneInfo,
    reader: MaillogReader,
    lines: Iterable[str],
    counted: Counted,
) -> None:
    batch: list[Event] = []
    for line in lines:
        outcome = reader.feed(line)
        if outcome is None:
            continue
        try:
            event = ingest.maillog_event(store, acct, outcome, tz)
        except MailstatsError:
            event = None
        if event is None:
            counted.unmatched += 1
            continue
        batch.append(event)
        if len(batch) >= _BATCH:
            counted.stored += store.insert_events(batch)
            batch = []
    if batch:
        counted.stored += store.insert_events(batch)


def _follow(
    store: Store, acct: Account, tz: ZoneInfo, zone: ZoneInfo, path: str, counted: Counted
) -> MaillogReader:
    """Read `path` as it grows, from where the last run stopped, until SIGTERM or SIGINT."""
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _: stopping.append(number))
    saved = stored.position(store, path) or {}
    reader = MaillogReader(zone, saved.get("reader"))
    fh: IO[str] | None = None
    inode = None
    while not stopping:
        if fh is None:
            fh, inode = _open(path, saved)
            saved = {}
        if fh is None:
            time.sleep(_POLL)
            continue
        lines = _available(fh)
        if lines:
            _ingest(store, acct, tz, reader, lines, counted)
            _save(store, path, inode, fh, reader)
            continue
        if _replaced(path, inode, fh):
            fh.close()
            fh = None  # rotated: the new file from its start
            continue
        time.sleep(_POLL)
    if fh is not None:
        _save(store, path, inode, fh, reader)
        fh.close()
    return reader


def _open(path: str, saved: dict[str, Any]) -> tuple[IO[str] | None, int | None]:
    try:
        fh = open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError:
        return None, None
    inode = os.fstat(fh.fileno()).st_ino
    offset = int(saved.get("offset", 0))
    if saved.get("inode") == inode and offset <= os.fstat(fh.fileno()).st_size:
        fh.seek(offset)
    return fh, inode


def _available(fh: IO[str]) -> list[str]:
    """Whole lines written so far; a line still being written waits for its end."""
    lines: list[str] = []
    while len(lines) < _BATCH * 4:
        start = fh.tell()
        line = fh.readline()
        if not line:
            break
        if not line.endswith("\n"):
            fh.seek(start)
            break
        lines.append(line)
    return lines


def _replaced(path: str, inode: int | None, fh: IO[str]) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return False  # moved away, the new one not there yet
    return now.st_ino != inode or now.st_size < fh.tell()


def _save(store: Store, path: str, inode: int | None, fh: IO[str], reader: MaillogReader) -> None:
    stored.save_position(store, path, {"inode": inode, "offset": fh.tell(), "reader": reader.state})


def _summary(reader: MaillogReader, counted: Counted) -> None:
    c = reader.counts
    click.echo(
        f"{c['lines']} line(s): {counted.stored} event(s) stored, {c['deferred']} deferral(s), "
        f"{counted.unmatched} result(s) of no destination, "
        f"{c['other'] + c['unknown']} line(s) not about a delivery ({c['unknown']} not understood)",
        err=True,
    )
    sys.stderr.flush()
