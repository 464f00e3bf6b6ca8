"""Where things are, for every thugrq command: Redis (and connections to it whose socket timeout
outlasts the reads that block on them), the dashboard, and the settings read from the
environment. The numbers a deployment tunes live in thugrq.defaults."""

from __future__ import annotations

import os
import threading
import weakref
from urllib.parse import urlsplit

import redis
from rq.connections import parse_connection

from thugrq.defaults import (
    BLOCKING_MARGIN,
    DEFAULT_MAX_RESULT_BYTES,
    MIN_MAX_RESULT_BYTES,
    SOCKET_TIMEOUT,
)
from thugrq.exceptions import ConfigError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_URL_VARIABLES = ("THUGRQ_REDIS_URL", "REDIS_URL")
REDIS_SCHEMES = ("redis", "rediss", "unix")

GENERIC_QUEUE = "generic"

#: Where `thugrq dashboard` and the local stack serve rq-dashboard unless told otherwise.
DEFAULT_DASHBOARD_PORT = 9181
DASHBOARD_PORT_VARIABLE = "THUGRQ_DASHBOARD_PORT"

#: Sets a worker's bound on a stored result when its flag does not.
MAX_RESULT_BYTES_VARIABLE = "THUGRQ_MAX_RESULT_BYTES"

#: The clients `blocking` made, by the pool they copy and their block.
_BLOCKING: weakref.WeakKeyDictionary[redis.ConnectionPool, dict[float, redis.Redis]] = (
    weakref.WeakKeyDictionary()
)
_BLOCKING_LOCK = threading.Lock()


def redis_url(explicit: str | None = None) -> str:
    """The Redis URL: the flag, then THUGRQ_REDIS_URL, then REDIS_URL, then the local default."""
    if explicit:
        return explicit
    for name in REDIS_URL_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return DEFAULT_REDIS_URL


def redis_url_configured() -> bool:
    """Whether the user named a Redis (otherwise the local stack may bring its own)."""
    return any(os.environ.get(name) for name in REDIS_URL_VARIABLES)


def dashboard_port() -> int:
    """The dashboard's port: THUGRQ_DASHBOARD_PORT, else 9181."""
    value = os.environ.get(DASHBOARD_PORT_VARIABLE)
    if not value:
        return DEFAULT_DASHBOARD_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"invalid {DASHBOARD_PORT_VARIABLE} {value!r}: give a port number")
    return int(value)


def max_result_bytes(value: str | None = None) -> int:
    """The bound on a stored result: `value` (the worker's flag), else THUGRQ_MAX_RESULT_BYTES,
    else 1 MiB."""
    text = (value or os.environ.get(MAX_RESULT_BYTES_VARIABLE) or str(DEFAULT_MAX_RESULT_BYTES)).strip()
    if not (text.isascii() and text.isdigit()) or int(text) < MIN_MAX_RESULT_BYTES:
        raise ConfigError(
            f"invalid result size bound {text!r}: give a number of bytes, at least "
            f"{MIN_MAX_RESULT_BYTES}"
        )
    return int(text)


def check_redis_url(url: str) -> str:
    """Refuse a Redis URL that redis-py could not use, before anything connects."""
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"invalid Redis URL {url!r}: use redis://[user:password@]host[:port][/db], "
            "rediss://... for TLS, or unix:///path/to/redis.sock"
        )
    try:
        redis.connection.parse_url(url)
    except ValueError as error:
        raise ConfigError(f"invalid Redis URL {url!r}: {error}") from error
    database = urlsplit(url).path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        raise ConfigError(f"invalid Redis URL {url!r}: the database must be a number, as in /0")
    return url


def connect(url: str | None = None, block: float = 0) -> redis.Redis:
    """A checked connection to Redis; one clear ConfigError when it cannot be reached.

    `block`: the longest any command sent on it blocks in Redis (0: none does); its socket
    timeout is then long enough for that (see `socket_timeout`). A worker passes its longest
    dequeue."""
    url = check_redis_url(redis_url(url))
    connection = redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=socket_timeout(block), health_check_interval=30,
        **_DRIVER,
    )
    try:
        connection.ping()
    except redis.exceptions.AuthenticationError as error:
        raise ConfigError(f"Redis at {redacted(url)} refused the credentials: {error}") from error
    except redis.exceptions.RedisError as error:
        raise ConfigError(
            f"cannot reach Redis at {redacted(url)} ({error}); start Redis or set "
            "--redis-url / THUGRQ_REDIS_URL"
        ) from error
    return connection


try:
    from redis.driver_info import DriverInfo

    #: What redis-py 8 tells the server about itself (CLIENT SETINFO), resolved once: by default
    #: each new connection reads redis-py's package metadata again (4 ms here, paid by every work
    #: horse's first command, since a forked process opens connections of its own).
    _DRIVER = {"driver_info": DriverInfo()}
except ImportError:  # redis-py before 8 resolves it once, at import
    _DRIVER = {}


def socket_timeout(block: float = 0) -> float:
    """How long a connection waits for an answer, when its commands block up to `block` s.

    A socket timeout is what tells a dead Redis (a partition) from a slow one, so thugrq keeps
    one; but redis-py 8 applies its default of 5 s to every read, a blocking one
    too: `job.latest_result(timeout=300)` (XREAD BLOCK) or a BLPOP of 15 s would fail with
    TimeoutError after 5 s. So a connection meant for blocking reads waits their block plus
    BLOCKING_MARGIN (what RQ's worker allows its own dequeue), and the others SOCKET_TIMEOUT.
    The timeout is fixed when the connection pool is made, before any connection exists:
    raising it afterwards (as RQ's worker does to a pool it is given) misses the connections
    already made, and redis-py's maintenance events restore the pool's first value."""
    return block + BLOCKING_MARGIN if block else SOCKET_TIMEOUT


def blocking(connection: redis.Redis, block: float) -> redis.Redis:
    """The Redis of `connection` (same server, credentials, TLS), for commands that block up to
    `block` seconds: `Job.latest_result(timeout=...)` on a job made with it, BLPOP, XREAD
    BLOCK. Its connection pool is its own, with the longer socket timeout (see
    `socket_timeout`), so `connection` keeps its short one for everything else:

        job = ThugrqJob(job_id, connection=config.blocking(connection, 300))
        result = job.latest_result(timeout=300)

    It is made once per pool and block and lives as long as `connection`'s pool: repeated
    waits reuse its connections instead of opening one each (a handshake of several round
    trips), so it is not to be closed by its user."""
    with _BLOCKING_LOCK:
        made = _BLOCKING.setdefault(connection.connection_pool, {})
        if block not in made:
            kind, connection_class, kwargs = parse_connection(connection)
            kwargs["socket_timeout"] = socket_timeout(block)
            made[block] = kind.from_pool(redis.ConnectionPool(connection_class=connection_class, **kwargs))
        return made[block]


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
