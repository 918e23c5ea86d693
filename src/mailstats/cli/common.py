"""Options and helpers every command shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from mailstats import settings as settings_mod
from mailstats.errors import MailstatsError
from mailstats.settings import Settings
from mailstats.store import Store, open_configured

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    db_help = "SQLite file or postgresql:// URL [env MAILSTATS_DB; default ./mailstats.db]"
    file_type = click.Path(exists=True, dir_okay=False)
    options = [
        click.option("--db", help=db_help),
        click.option("--config", "config_file", type=file_type, help="A TOML settings file."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class SettingsError(click.ClickException):
    """A setting that cannot work: one line naming it, exit status 2 (as for usage)."""

    exit_code = 2


def load_settings(**flags: Any) -> Settings:
    try:
        return settings_mod.load(**flags)
    except MailstatsError as exc:
        raise SettingsError(exc.message) from None


def open_db(settings: Settings) -> Store:
    try:
        return open_configured(settings)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
