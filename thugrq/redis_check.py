"""Whether the Redis a worker or a submitter is given can lose jobs it acknowledged: said loudly,
once per process, when it starts.

Two settings lose jobs without a word from Redis or RQ:

- an evicting `maxmemory-policy` (anything but `noeviction`): when Redis reaches its memory
  limit it deletes keys, job hashes and results among them, and the jobs vanish (RQ's own
  documentation requires `noeviction`);
- no persistence at all (no append-only file and no RDB save point): a restart or a crash of
  Redis loses every queued job and every result.

The settings are read with `CONFIG GET` where the ACL allows it, else from `INFO` (memory and
persistence), which shows the policy and the append-only file but not the RDB save points: then
a Redis without the append-only file is not called unpersisted. A user allowed neither command is
not checked, which is said at debug level only: the check never stops a worker or a submitter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from thugrq.config import redacted

log = logging.getLogger(__name__)

#: What Redis must do when full for RQ to lose no job: refuse writes, never delete keys.
SAFE_POLICY = "noeviction"

_checked = False


@dataclass(frozen=True)
class Settings:
    """What decides whether a Redis keeps what it acknowledged."""

    policy: str
    append_only: bool
    #: Whether RDB snapshots are configured; None when the check could not see (INFO only).
    save_points: bool | None


def settings(connection: redis.Redis) -> Settings:
    """The Redis's settings, by CONFIG GET, else by INFO (a RedisError when neither works)."""
    try:
        found = {}
        for name in ("maxmemory-policy", "appendonly", "save"):
            found.update(connection.config_get(name))
        return Settings(
            found["maxmemory-policy"], found["appendonly"] == "yes", bool(found["save"].strip())
        )
    except (redis.exceptions.RedisError, KeyError) as error:
        log.debug("CONFIG GET refused (%s): reading INFO instead", error)
    memory, persistence = connection.info("memory"), connection.info("persistence")
    return Settings(memory["maxmemory_policy"], bool(persistence["aof_enabled"]), None)


def risks(found: Settings) -> list[str]:
    """How a Redis with these settings can lose acknowledged jobs, with what to do about it."""
    said = []
    if found.policy != SAFE_POLICY:
        said.append(
            f"maxmemory-policy is {found.policy}: when its memory is full, Redis evicts keys and "
            "the jobs and results it evicts are lost without a word; set `maxmemory-policy "
            f"{SAFE_POLICY}` (RQ requires it)"
        )
    if not found.append_only and found.save_points is False:
        said.append(
            "no persistence (appendonly no and no RDB save point): a restart or crash of Redis "
            "loses every queued job and every result; set `appendonly yes`"
        )
    return said


def warn_once(url: str, say: Callable[[str], None]) -> None:
    """Check the Redis at `url` and `say` each risk found, on the first call of this process only.

    Never raises: a check that cannot run (refused by the ACL, Redis unreachable) is logged at
    debug level, and the command goes on to meet the Redis on its own.
    """
    global _checked
    if _checked:
        return
    _checked = True
    connection = None
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        found = settings(connection)
    except (redis.exceptions.RedisError, KeyError, ValueError) as error:
        log.debug("could not check the Redis at %s (%s)", redacted(url), error)
        return
    finally:
        if connection is not None:
            connection.close()
    for risk in risks(found):
        say(f"WARNING: the Redis at {redacted(url)} can lose jobs: {risk}")
