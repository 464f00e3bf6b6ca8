"""Where the fleet stands: `geo` (this host), `workers`, `countries`."""

from __future__ import annotations

from typing import Any

import click

from thugrq import fleet, geo
from thugrq.cli.helpers import (
    NO_COUNTRY, Output, RedisTarget, failures, json_option, pass_redis, proxy_option,
)
from thugrq.exceptions import GeoError
from thugrq.proxy import Proxy


@click.command(name="geo")
@click.option("--public-ip", metavar="ADDRESS", help="Locate this address instead of asking DNS.")
@proxy_option("Locate the exit of this proxy, asking DNS through it, as a worker given it does.")
@json_option("Print a JSON object.")
def geo_command(public_ip: str | None, proxy: Proxy | None, output: Output) -> None:
    """Show this host's public address, country and ASN, and the queues a worker here would serve.

    The lookup goes through DNS: what-is-my-IP services, then Team Cymru's IP-to-ASN records.
    THUGRQ_DNS=host:port sends every query to one server. With --proxy, every query goes over
    TCP through the proxy, and what is shown is where the proxy exits.
    """
    with failures(GeoError, prefix=NO_COUNTRY):
        location = geo.locate(public_ip, proxy)
    queues = fleet.queues_for(location.country)
    row = {**location.to_dict(), "queues": queues, "proxy": str(proxy) if proxy else None}
    output.rows([row], _print_location)  # str(proxy): never its credentials


def _print_location(rows: list[dict[str, Any]]) -> None:
    (location,) = rows
    click.echo(f"address   {location['address']}")
    click.echo(f"country   {location['country']}")
    click.echo(f"asn       AS{location['asn']} {location['as_name'] or ''}".rstrip())
    click.echo(f"prefix    {location['prefix']} ({location['registry']})")
    click.echo(f"queues    {', '.join(location['queues'])}")
    if location["proxy"]:
        click.echo(f"proxy     {location['proxy']}")


@click.command()
@json_option()
@pass_redis
def workers(target: RedisTarget, output: Output) -> None:
    """List live workers: country, ASN and public address (a proxied worker's: its proxy's
    exit), Thug version, queues, last seen, and the proxy it fetches through (never its
    credentials)."""
    output.rows(fleet.workers(target.connect()), _print_workers)


def _print_workers(records: list[fleet.WorkerRecord]) -> None:
    if not records:
        click.echo("no live workers", err=True)
        return
    click.echo(
        f"{'NAME':<32} {'COUNTRY':<7} {'ASN':<8} {'ADDRESS':<15} {'THUG':<6} {'QUEUES':<14} "
        "LAST SEEN  VIA"
    )
    for record in records:
        click.echo(
            f"{record.name:<32} {record.country or '-':<7} {record.asn or '-':<8} "
            f"{record.address or '-':<15} {record.thug:<6} {','.join(record.queues):<14} "
            f"{record.last_seen}  {record.proxy or 'direct'}"
        )


@click.command()
@json_option()
@pass_redis
def countries(target: RedisTarget, output: Output) -> None:
    """List country queues with their live workers and waiting jobs.

    A country whose jobs wait with no live worker to take them is marked STARVING.
    """
    output.rows(fleet.countries(target.connect()), _print_countries)


def _print_countries(rows: list[fleet.CountryRow]) -> None:
    click.echo(f"{'COUNTRY':<8} {'WORKERS':>7} {'WAITING':>7}")
    for row in rows:
        mark = "  STARVING: no live worker" if row.starving else ""
        click.echo(f"{row.country:<8} {row.workers:>7} {row.waiting:>7}{mark}")


COMMANDS = (geo_command, workers, countries)
