"""`mailstats demo`: fill a database with realistic data (placeholder until the generator lands)."""

from __future__ import annotations

import click


@click.command()
def demo() -> None:
    """Fill a database with demo data."""
    raise click.ClickException("not yet")
