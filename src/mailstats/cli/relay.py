"""`mailstats relay`: the SMTP relay that tracks, suppresses and forwards."""

from __future__ import annotations

import logging
from typing import Any

import click

from mailstats.cli.common import db_option, load_settings, open_db


@click.command()
@db_option
@click.option("--listen", "smtp_listen", help="host:port to take mail on [default 127.0.0.1:2525]")
@click.option("--next-hop", "smtp_next_hop", help="host:port of the MTA that delivers")
@click.option("--public-url", help="Base URL of tracked links, e.g. https://t.example.com")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes.")
def relay(workers: int, **flags: Any) -> None:
    """Take mail over SMTP (AUTH: account name and an access token), track each copy and
    hand it to the next hop; suppressed recipients are refused at RCPT TO.

    Example: mailstats relay --db mailstats.db --listen 127.0.0.1:2525 --next-hop 127.0.0.1:10026
    """
    from mailstats.relay import run

    settings = load_settings(**flags)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # aiosmtpd's per-command lines, and a deprecation notice of its own on every AUTH
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    if workers < 1:
        raise click.UsageError("--workers must be at least 1")
    open_db(settings).close()  # migrate once, before any worker starts
    click.echo(
        f"mailstats relay on {settings.smtp_listen}, next hop {settings.smtp_next_hop}", err=True
    )
    run(settings, lambda: open_db(settings), workers)
