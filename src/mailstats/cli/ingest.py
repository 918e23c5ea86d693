"""`mailstats ingest-mail`: bounce, complaint and SES notification emails into events, from
message files, mbox files, Maildir folders or standard input."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import click
from rich.console import Console
from rich.progress import Progress

from mailstats import ingest, mailboxes
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import InvalidParameter, MailstatsError
from mailstats.store import Account, Store

EX_TEMPFAIL = 75  # sysexits.h: an MTA's pipe keeps the message and tries again


@click.command(name="ingest-mail")
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@click.option(
    "--account",
    help="Only reports of this account (a report of another stores nothing); without it, "
    "each report's account is the one of the message it names.",
)
@click.option("--pipe", is_flag=True,
              help="As an MTA's pipe: exit 0 for a message that is not a report (so nothing "
              "is sent back to its sender), 75 when the database cannot be reached.")  # fmt: skip
@db_option
def ingest_mail(
    paths: tuple[str, ...],
    account: str | None,
    pipe: bool,
    db: str | None,
    config_file: str | None,
) -> None:
    """Read bounces and complaints into errors and abuses, then print a summary.

    PATHS are message files, mbox files or Maildir folders; `-` or nothing reads one message
    from standard input (as an MTA's pipe delivers it). A message that is not a report is
    named on stderr and stores nothing; auto-replies are counted as not a bounce.

    The account of each report is found from the message it names (its Message-ID or VERP
    tag), so a mail server can pipe every bounce to one command; --account keeps only that
    account's reports.

    Example: mailstats ingest-mail bounces/*.eml ~/Maildir/.Bounces

    Exit status: 0, or 1 when a message could not be read or names no known destination
    (0 with --pipe), or 75 when the database failed (an MTA keeps the message and tries
    again).
    """
    try:
        sources = [mailboxes.source(p) for p in paths or ("-",)]
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    settings = load_settings(db=db, config_file=config_file)
    try:
        store = open_db(settings)
    except click.ClickException:
        raise
    except Exception as exc:  # the database cannot be reached: let the MTA try again later
        click.echo(f"temporary failure: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(EX_TEMPFAIL) from None
    try:
        only = store.account(account) if account is not None else None
        tally = _ingest_all(store, only, sources)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    except Exception as exc:  # the database went away: let the MTA try again later
        click.echo(f"temporary failure: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(EX_TEMPFAIL) from None
    finally:
        store.close()
    click.echo(
        f"{tally['messages']} message(s): {tally['taken']} taken "
        f"({tally['stored']} event(s) stored), {tally['not a bounce']} not a bounce, "
        f"{tally['unmatched']} unmatched, {tally['unreadable']} unreadable"
    )
    if (tally["unreadable"] or tally["unmatched"]) and not pipe:
        raise SystemExit(1)


def _ingest_all(
    store: Store, account: Account | None, sources: list[mailboxes.Source]
) -> Counter[str]:
    tally: Counter[str] = Counter()
    # Files named one by one get a line each; a mailbox's messages only when they fail.
    files = all(s.kind in ("stdin", "message") for s in sources)
    single = len(sources) == 1 and files
    console = Console(stderr=True)
    with Progress(console=console, disable=single or not console.is_terminal) as bar:
        task = bar.add_task("reading", total=sum(s.count() for s in sources))
        for label, raw in _messages(sources):
            _one(store, account, label, raw, tally, verbose=files)
            bar.advance(task)
    return tally


def _messages(sources: list[mailboxes.Source]) -> Iterator[tuple[str, bytes]]:
    for src in sources:
        yield from src.messages()


def _one(
    store: Store, only: Account | None, label: str, raw: bytes, tally: Counter[str], verbose: bool
) -> None:
    tally["messages"] += 1
    try:
        owner = ingest.report_account(store, raw)
        if owner is None:  # an auto-reply or delivery notice: counted as such below
            owner = only
        elif only is not None and owner.id != only.id:
            raise InvalidParameter(f"the report belongs to another account than {only.name!r}")
        taken = (
            ingest.ingest_report(store, owner, raw)
            if owner is not None
            else ingest.Taken(not_a_bounce=ingest.not_a_bounce(raw))
        )
    except ingest.Unmatched as exc:
        tally["unmatched"] += 1
        click.echo(f"{label}: {exc.message}", err=True)
        return
    except MailstatsError as exc:
        tally["unreadable"] += 1
        click.echo(f"{label}: {exc.message}", err=True)
        return
    if taken.not_a_bounce:
        tally["not a bounce"] += 1
        if verbose:
            click.echo(f"{label}: not a bounce: {taken.not_a_bounce}")
        return
    tally["taken"] += 1
    tally["stored"] += taken.stored
    if verbose:
        why = f" ({', '.join(dict.fromkeys(taken.reasons))})" if taken.reasons else ""
        assert owner is not None
        click.echo(f"{label}: {taken.stored} event(s) for account {owner.name}{why}")
    sys.stdout.flush()
