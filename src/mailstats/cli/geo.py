"""`mailstats geo`: which data the indexer reads to place addresses, and one lookup."""

from __future__ import annotations

from typing import Any

import click
import orjson

from mailstats.cli.common import load_settings
from mailstats.errors import MailstatsError
from mailstats.geo import Geo


def _geo(flags: dict[str, Any]) -> Geo:
    settings = load_settings(**flags)
    try:
        return Geo(settings.geo, settings.geo_paths)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None


def _options(func: Any) -> Any:
    file_type = click.Path(exists=True, dir_okay=False)
    func = click.option(
        "--geo-db", help="MaxMind-format files, comma-separated [env MAILSTATS_GEO_DB]."
    )(func)
    func = click.option(
        "--geo",
        type=click.Choice(["network", "country", "off"]),
        help="What is looked up [env MAILSTATS_GEO; default network].",
    )(func)
    return click.option("--config", "config_file", type=file_type, help="A TOML settings file.")(
        func
    )


@click.group()
def geo() -> None:
    """Where clicks and opens come from: country and network, from offline data."""


@geo.command()
@_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status(as_json: bool, **flags: Any) -> None:
    """Say what is looked up, from which data (its source and date), and look up one
    address as a check.

    Example: mailstats geo status --geo-db /var/lib/GeoIP/GeoLite2-City.mmdb
    """
    info = _geo(flags).status()
    if as_json:
        click.echo(orjson.dumps(info).decode())
        return
    click.echo(f"geo: {info['geo']}")
    if info["data"]:
        click.echo(f"data: {info['data']}")
    if info.get("sample"):
        sample = info["sample"]
        network = " ".join(str(v) for v in (sample["asn"], sample["asnorg"]) if v) or "-"
        click.echo(f"lookup {sample['address']}: {sample['country'] or '-'} {network}")
    if info.get("attribution"):
        click.echo(info["attribution"])


@geo.command()
@_options
@click.argument("address")
def lookup(address: str, **flags: Any) -> None:
    """Print the country and network of one address (IPv4 or IPv6) as JSON.

    Example: mailstats geo lookup 193.0.6.139
    """
    place = _geo(flags).lookup(address)
    found = {"address": address, "country": place.country, "asn": place.asn,
             "asnorg": place.asnorg}  # fmt: skip
    click.echo(orjson.dumps(found).decode())
