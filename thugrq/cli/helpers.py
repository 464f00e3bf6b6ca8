"""What every thugrq command shares: the Redis it talks to, one-line failures, `--json`, and
a flag for every analysis option.

The library raises its own exceptions (thugrq.exceptions) and knows nothing of click; here they
become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import redis

from thugrq import config, links
from thugrq.exceptions import ConfigError, InvalidInput
from thugrq.options import Options
from thugrq.personalities import DEFAULT_PERSONALITY
from thugrq.proxy import PASSWORD_VARIABLE, USERNAME_VARIABLE, Proxy
from thugrq.store import STORE_VARIABLE, Store, StoreError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
T = TypeVar("T")
#: What a failed location lookup is called, by `geo` and by `thugrq-worker --require-country`.
NO_COUNTRY = "cannot find this host's country: "


class Failure(click.ClickException):
    """A clear one-line error and a non-zero exit, never a traceback."""


@contextmanager
def failures(*kinds: type[Exception], prefix: str = "") -> Iterator[None]:
    """Turn the library's errors of these kinds into a Failure saying the same (after `prefix`)."""
    try:
        yield
    except kinds as error:
        raise Failure(f"{prefix}{error}") from error


@dataclass
class RedisTarget:
    """The Redis a command talks to: the group's --redis-url, else the environment's.

    It is the click context object of `thugrq`'s commands (`pass_redis`), and the group
    translates, through `translating`, a connection lost in the middle of a command.
    """

    explicit: str | None = None

    @property
    def url(self) -> str:
        return config.redis_url(self.explicit)

    def connect(self) -> redis.Redis:
        """A checked connection; a Failure when the URL is refused or Redis cannot be reached."""
        with failures(ConfigError):
            return config.connect(self.explicit)

    @contextmanager
    def translating(self) -> Iterator[None]:
        """Redis going away in the middle of a command: one line, password hidden."""
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            raise Failure(
                f"lost the connection to Redis at {config.redacted(self.url)} ({error})"
            ) from error


pass_redis = click.make_pass_decorator(RedisTarget, ensure=True)


class Output:
    """What a command prints: JSON with --json (see `json_option`), else text."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def rows(self, rows: Iterable[T], text: Callable[[list[T]], None]) -> None:
        """One JSON object a line with --json (a row is a dict or has `to_dict`), else
        `text(rows)`."""
        rows = list(rows)
        if not self.as_json:
            text(rows)
            return
        for row in rows:
            click.echo(json.dumps(row.to_dict() if hasattr(row, "to_dict") else row, sort_keys=True))

    def document(self, document: T, text: Callable[[T], None]) -> None:
        """One indented JSON document with --json, else `text(document)`."""
        if self.as_json:
            click.echo(json.dumps(document, indent=2, sort_keys=True))
        else:
            text(document)


def dashboard_base(redis_url: str) -> str | None:
    """The base URL of the dashboard whose pages show the jobs of the Redis at `redis_url`
    (thugrq.links), or None; a Failure when THUGRQ_DASHBOARD_URL is no dashboard address."""
    with failures(ConfigError):
        return links.dashboard_base(redis_url)


def progress(length: int, label: str, threshold: int = 0) -> Any:
    """A progress bar on stderr when it is a terminal and the work is big enough."""
    show = sys.stderr.isatty() and length >= threshold
    return click.progressbar(
        length=length, label=label, file=sys.stderr if show else open(os.devnull, "w")
    )


def json_option(help: str = "One JSON object per line instead of text.") -> Callable:
    """The --json flag, handed to the command as `output`, an `Output`."""
    return click.option(
        "--json", "output", is_flag=True, help=help,
        callback=lambda ctx, param, value: Output(value),
    )


def store_option(command: Callable) -> Callable:
    """--store DIR (else $THUGRQ_STORE): the collected store (`thugrq collect`) read when Redis
    no longer holds what was asked for; handed to the command as `store`, a path or None."""
    return click.option(
        "--store", metavar="DIR", envvar=STORE_VARIABLE, type=click.Path(file_okay=False),
        help=f"Read DIR, the store `thugrq collect` fills, when Redis no longer holds it "
        f"(default: ${STORE_VARIABLE}).",
    )(command)


def open_store(directory: str) -> Store:
    """The collected store at `directory`, or a Failure saying why not."""
    with failures(StoreError, OSError):
        return Store(directory)


def proxy_option(help: str) -> Callable:
    """The --proxy URL option (else $THUGRQ_PROXY), handed to the command as `proxy`, a Proxy or
    None: a refused URL is a usage error before the command runs."""
    return click.option(
        "--proxy", metavar="URL", envvar="THUGRQ_PROXY", callback=_parse_proxy,
        help=f"{help} socks5://, socks5h:// or http:// HOST:PORT (default: $THUGRQ_PROXY); "
        f"credentials from ${USERNAME_VARIABLE} and ${PASSWORD_VARIABLE}, never the URL.",
    )


def _parse_proxy(ctx: click.Context, param: click.Parameter, value: str | None) -> Proxy | None:
    try:
        return Proxy.parse(value) if value else None
    except InvalidInput as error:
        raise click.BadParameter(str(error)) from error


def thug_options(command: Callable) -> Callable:
    """Add a flag for every analysis option of `Options` (but the user agent) to `command`."""
    for field in reversed(dataclasses.fields(Options)):
        if field.name == "useragent":
            continue
        kind, check = field.metadata["kind"], field.metadata["check"]
        flag = "--" + field.name.replace("_", "-")
        if kind is bool and field.default:
            decorator = click.option(
                "--no-" + field.name.replace("_", "-"), field.name, flag_value=False,
                default=True, help="Turn off: " + field.metadata["help"][0].lower()
                + field.metadata["help"][1:],
            )
        elif kind is bool:
            decorator = click.option(flag, field.name, is_flag=True, help=field.metadata["help"])
        else:
            decorator = click.option(
                flag,
                field.name,
                type=click.IntRange(*check.bounds) if kind is int else str,
                default=field.default if field.default != () else None,
                show_default=field.default not in (None, ()),
                metavar=field.metadata["metavar"],
                help=field.metadata["help"],
                callback=_split_commas if kind is list else None,
            )
        command = decorator(command)
    return command


def _split_commas(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple:
    return tuple(item.strip().lower() for item in value.split(",") if item.strip()) if value else ()


def options_from(params: dict[str, Any], useragent: str = DEFAULT_PERSONALITY) -> Options:
    """Options from the flags `thug_options` added (InvalidInput when a value is refused)."""
    names = {field.name for field in dataclasses.fields(Options)} - {"useragent"}
    return Options(useragent=useragent, **{name: params[name] for name in names})
