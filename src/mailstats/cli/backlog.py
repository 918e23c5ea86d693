"""`mailstats backlog`: how far the indexer is behind the capture log, and the spool."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from mailstats.cli.common import db_option, load_settings, open_db


@click.command()
@db_option
@click.option("--wait", type=float, help="Wait up to this many seconds for the backlog to drain.")
@click.option("--derive", is_flag=True, help="Derive it here, unless a server holds the role.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--capture", help="The NATS servers of the capture stream (nats://host:port,...).")
def backlog(wait: float | None, derive: bool, as_json: bool, **flags: Any) -> None:
    """Report what was captured and is not in the API yet: events, the oldest one's
    age, and spool files waiting for the database. Exit status 1 when --wait runs out.

    Example: mailstats backlog --db mailstats.db --wait 30
    """
    settings = load_settings(**flags)
    store = open_db(settings)
    deadline = time.monotonic() + (wait or 0)
    try:
        while True:
            if derive and store.backend.indexer_role():
                while store.derive().taken:
                    pass
            found = store.backlog()
            spooled = len(list(settings.spool_path.glob("*.spool")))
            if wait is None or (found.events == 0 and spooled == 0):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        store.close()
    report = {"events": found.events, "oldest_age_s": round(found.age(), 3),
              "spool_files": spooled}  # fmt: skip
    unit = "events"
    if found.messages is not None:  # capture on NATS: counted in stream messages
        report["messages"] = found.messages
        unit = "stream messages"
    if as_json:
        click.echo(orjson.dumps(report).decode())
    else:
        click.echo(
            f"captured, not derived yet: {found.events} {unit}"
            f" (the oldest {found.age():.1f} s ago); spool files waiting: {spooled}"
        )
    if wait is not None and (found.events or spooled):
        raise SystemExit(1)
