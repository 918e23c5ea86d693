"""`mailstats user create`: a name and password that sign in to one account's dashboard."""

from __future__ import annotations

import sys

import click

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError


@click.group()
def user() -> None:
    """Dashboard users (an access token signs in too)."""


@user.command()
@click.option("--account", required=True, help="The account's name; created if it does not exist.")
@click.option("--name", required=True, help="The user name to sign in with.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input, not a prompt."
)
@db_option
def create(
    account: str, name: str, password_stdin: bool, db: str | None, config_file: str | None
) -> None:
    """Create a user; the password is asked for (twice) and kept only as an argon2 hash.

    Example: mailstats user create --account acme --name ann --db mailstats.db
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        acct = store.ensure_account(account, settings.timezone)
        user_id = store.users.create(acct, name, password)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    click.echo(f"Created user {name!r} (ID {user_id}) for account {account!r}.")
