"""`mailstats export KIND`: the same selection as the API, streamed as CSV or NDJSON."""

from __future__ import annotations

import sys
from typing import IO, Any
from zoneinfo import ZoneInfo

import click

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.kinds import KINDS
from mailstats.serialize import csv_chunks, ndjson_chunks
from mailstats.store import Filter, Scope
from mailstats.timefmt import parse_time


@click.command()
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.option("--account", required=True, help="The account whose events to export.")
@click.option("--begintime", help="From this time on (YYYY-MM-DD HH:MM:SS, account time zone).")
@click.option("--endtime", help="Up to and including this time.")
@click.option("--unique", is_flag=True, help="Only the first event per destination (and link).")
@click.option("--emailing", type=int, help="Only this emailing's events.")
@click.option(
    "--bots",
    type=click.Choice(["include", "exclude", "only"]),
    default="include",
    show_default=True,
    help="Machine clicks and opens: keep them, leave them out, or only them.",
)
@click.option("--extended", is_flag=True, help="Add verdict, reasons, device, os and client.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "ndjson"]), default="ndjson", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="File to write [default: stdout].",
)
@db_option
def export(
    kind: str,
    account: str,
    fmt: str,
    output: str | None,
    db: str | None,
    config_file: str | None,
    **selection: Any,
) -> None:
    """Stream every matching event, in ID order, without holding them in memory.

    Example: mailstats export clicks --account acme --format csv -o clicks.csv
    --begintime "2026-10-01 00:00:00"
    """
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        acct = store.account(account)
        tz = ZoneInfo(acct.timezone)
        flt = Filter(
            begin=_time(selection["begintime"], tz, "begintime"),
            end=_time(selection["endtime"], tz, "endtime"),
            unique=selection["unique"],
            bots=selection["bots"],
        )
        chosen = KINDS[kind].extended() if selection["extended"] else KINDS[kind]
        scope = Scope(acct.id, emailing_id=selection["emailing"])
        store.check_scope(scope)
        rows = store.stream_events(chosen, scope, flt)
        chunks = (
            ndjson_chunks(chosen, rows, tz) if fmt == "ndjson" else csv_chunks(chosen, rows, tz)
        )
        out: IO[bytes] = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in chunks:
                out.write(chunk)
        finally:
            if output:
                out.close()
            else:
                out.flush()
    except MailstatsError as exc:  # an unknown account or emailing, a bad time
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


def _time(value: str | None, tz: ZoneInfo, name: str) -> int | None:
    return None if value is None else parse_time(value, tz, name)
