"""The `mailstats` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

import click

from mailstats import __version__
from mailstats.cli import (
    backlog,
    demo,
    export,
    geo,
    ingest,
    maillog,
    privacy,
    relay,
    rescore,
    serve,
    stats,
    suppressions,
    tokens,
    users,
    watch,
    webhooks,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailstats")
def cli() -> None:
    """Email engagement tracking and statistics, wire-compatible with Copernica's v2 API."""


cli.add_command(serve.serve)
cli.add_command(serve.migrate)
cli.add_command(tokens.token)
cli.add_command(demo.demo)
cli.add_command(export.export)
cli.add_command(ingest.ingest_mail)
cli.add_command(backlog.backlog)
cli.add_command(watch.watch_mailbox)
cli.add_command(maillog.ingest_maillog)
cli.add_command(relay.relay)
cli.add_command(suppressions.suppressions)
cli.add_command(users.user)
cli.add_command(stats.stats)
cli.add_command(privacy.account)
cli.add_command(privacy.erase)
cli.add_command(privacy.subject_export)
cli.add_command(privacy.retention)
cli.add_command(webhooks.webhook)
cli.add_command(geo.geo)
cli.add_command(rescore.rescore)


def main() -> None:
    cli(prog_name="mailstats")
