"""`mailstats watch-mailbox`: a bounce mailbox watched over IMAP, its messages into events."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click
from imapclient import IMAPClient

from mailstats import imap
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.cli.ingest import EX_TEMPFAIL
from mailstats.errors import MailstatsError
from mailstats.settings import Secret


@click.command(name="watch-mailbox")
@click.option("--account", required=True, help="The account the reports belong to.")
@click.option("--host", required=True, help="The IMAP server.")
@click.option("--port", type=int, default=None, help="Default 993 (imaps) or 143 (starttls).")
@click.option("--user", required=True, help="The mailbox's login.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False),
              help="A file holding the password [or env MAILSTATS_IMAP_PASSWORD].")  # fmt: skip
@click.option("--tls", type=click.Choice(["imaps", "starttls"]), default="imaps",
              show_default=True, help="TLS from the start, or STARTTLS on the plain port.")  # fmt: skip
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="Trust these CA certificates instead of the system's.")  # fmt: skip
@click.option("--folder", default="INBOX", show_default=True, help="Where bounces arrive.")
@click.option("--taken-folder", default="mailstats-taken", show_default=True,
              help="Where taken messages are moved (made when missing).")  # fmt: skip
@click.option("--poll", type=float, default=60.0, show_default=True,
              help="Seconds between rounds on a server without IDLE.")  # fmt: skip
@click.option("--once", is_flag=True, help="Take what is there now, then stop.")
@db_option
def watch_mailbox(
    account: str, host: str, port: int | None, user: str, password_file: str | None,
    tls: str, ca_file: str | None, folder: str, taken_folder: str, poll: float, once: bool,
    db: str | None, config_file: str | None,
) -> None:  # fmt: skip
    """Watch a bounce mailbox over IMAP: taken messages move to --taken-folder, the rest stay,
    marked so that they are read once. Stops on SIGINT or SIGTERM.

    Example: MAILSTATS_IMAP_PASSWORD=... mailstats watch-mailbox --account acme
    --host imap.example.com --user bounces@example.com
    """
    password = _password(password_file)
    box = imap.Mailbox(
        host=host, user=user, password=Secret(password), port=port or (993 if tls == "imaps"
        else 143), tls=tls, ca_file=ca_file, folder=folder, taken_folder=taken_folder, poll=poll,
    )  # fmt: skip
    store = open_db(load_settings(db=db, config_file=config_file))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        tally = imap.watch(store, store.account(account), box, once=once, stop=stop,
                           said=lambda line: click.echo(line, err=True))  # fmt: skip
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    except (OSError, IMAPClient.Error) as exc:
        click.echo(f"IMAP: {exc}", err=True)
        raise SystemExit(EX_TEMPFAIL) from None
    except Exception as exc:  # the database failed; the message stays unread for next time
        click.echo(f"temporary failure: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(EX_TEMPFAIL) from None
    finally:
        store.close()
    click.echo(
        f"{sum(tally.values())} message(s): {tally['taken']} taken, "
        f"{tally['not a bounce']} not a bounce, {tally['unmatched']} unmatched, "
        f"{tally['unreadable']} unreadable"
    )


def _password(path: str | None) -> str:
    if path:
        return Path(path).read_text().strip()
    import os  # read once, at start-up, like every other setting

    value = os.environ.get("MAILSTATS_IMAP_PASSWORD", "")
    if not value:
        raise click.UsageError("give --password-file or set MAILSTATS_IMAP_PASSWORD")
    return value
