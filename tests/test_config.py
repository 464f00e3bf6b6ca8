"""Where Redis is: the flag, THUGRQ_REDIS_URL, REDIS_URL, then the local default; and
connections whose socket timeout outlasts the reads that block on them (redis-py 8 cuts every
read at 5 s by default)."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
import redis
from rq.results import Result
from rq.serializers import JSONSerializer

from thugrq import config, job as jobs, submit
from thugrq.defaults import BLOCKING_MARGIN, SOCKET_TIMEOUT, WORKER_TTL
from thugrq.exceptions import ConfigError
from thugrq.job import ThugrqJob
from thugrq.location import Keeper
from thugrq.worker import ThugrqWorker

#: Longer than redis-py 8's default socket timeout (5 s), which a blocking read must outlast.
LATE = 6.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in config.REDIS_URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_default_is_the_local_redis():
    assert config.redis_url() == config.DEFAULT_REDIS_URL
    assert not config.redis_url_configured()


def test_redis_url_variable_is_used(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://r:1/0")
    assert config.redis_url() == "redis://r:1/0"


def test_thugrq_variable_wins_over_redis_url(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://r:1/0")
    monkeypatch.setenv("THUGRQ_REDIS_URL", "redis://t:2/0")
    assert config.redis_url() == "redis://t:2/0"


def test_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("THUGRQ_REDIS_URL", "redis://t:2/0")
    assert config.redis_url("redis://f:3/0") == "redis://f:3/0"


@pytest.mark.parametrize(
    "url", ["http://h:6379", "h:6379", "redis://h:port/0", "redis://h:6379/zero"]
)
def test_unusable_redis_urls_are_refused(url):
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        config.check_redis_url(url)


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "rediss://user:pw@h:6380/2", "unix:///run/redis.sock"]
)
def test_usable_redis_urls_pass(url):
    assert config.check_redis_url(url) == url


def test_passwords_are_redacted_from_messages():
    assert config.redacted("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"


def test_a_wrong_password_says_redis_refused_the_credentials(redis_url):
    url = redis_url.replace("redis://", "redis://nobody:wrong@")
    expected = f"Redis at {config.redacted(url)} refused the credentials: "
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}"):
        config.connect(url)


def test_connections_time_out_unless_made_for_blocking_reads(redis_url):
    def timeout_of(connection: redis.Redis) -> float:
        return connection.connection_pool.connection_kwargs["socket_timeout"]

    plain = config.connect(redis_url)
    assert timeout_of(plain) == SOCKET_TIMEOUT
    waiting = config.blocking(plain, 300)
    assert timeout_of(waiting) == 300 + BLOCKING_MARGIN and waiting.ping()
    assert timeout_of(plain) == SOCKET_TIMEOUT
    assert config.blocking(plain, 300) is waiting  # made once, its connections reused
    assert timeout_of(config.blocking(plain, 20)) == 20 + BLOCKING_MARGIN
    # A worker's connection already fits its dequeue, which RQ would otherwise stretch for
    # connections made later only (not the one that answered connect's ping).
    worker = ThugrqWorker(["IT"], connection=config.connect(redis_url, block=WORKER_TTL - 15),
                          keeper=Keeper.given("IT"))
    assert timeout_of(worker.connection) == worker.connection_timeout == worker.dequeue_timeout + 10


@pytest.mark.parametrize(
    "url", ["rediss://user:pw@h:6380/2?ssl_cert_reqs=none", "unix:///run/redis.sock?db=3"]
)
def test_a_blocking_connection_reaches_the_same_redis_the_same_way(url):
    given = redis.Redis.from_url(url)
    made, kept = config.blocking(given, 20).connection_pool, given.connection_pool
    assert made.connection_class is kept.connection_class  # TLS, or the unix socket
    for name in ("host", "port", "path", "db", "username", "password", "ssl_cert_reqs"):
        assert made.connection_kwargs.get(name) == kept.connection_kwargs.get(name), name


def test_a_result_that_appears_after_5_s_is_read_by_a_blocking_wait(redis_url):
    """What bench/run.py does: XREAD BLOCK on the job's results through config.blocking."""
    connection = config.connect(redis_url)
    (submitted,) = submit.enqueue(connection, ["http://late.test/"]).jobs
    job = jobs.fetch(connection, submitted.id)
    document = {"schema": "thugrq.result/1", "status": "completed", "url": "http://late.test/"}
    # Written as a worker ends the job: RQ's Result.create, an XADD to the job's results.
    timer = threading.Timer(LATE, Result.create, (job, Result.Type.SUCCESSFUL, 60),
                            {"return_value": document})
    started = time.monotonic()
    timer.start()
    try:
        reader = ThugrqJob(job.id, connection=config.blocking(connection, 15), serializer=JSONSerializer)
        result = reader.latest_result(timeout=15)
    finally:
        timer.cancel()
    assert result is not None and result.return_value == document
    assert time.monotonic() - started >= LATE


def test_an_idle_worker_takes_a_job_queued_after_5_s_without_a_redis_timeout(redis_url, caplog):
    """The worker's blocking dequeue (BLMOVE; BLPOP with several queues), on a connection
    made as `thugrq.worker.run` makes it: cut by redis-py after 5 s, RQ would log that it
    could not connect to Redis and try again."""
    worker = ThugrqWorker(["IT"], connection=config.connect(redis_url, block=WORKER_TTL - 15),
                          keeper=Keeper.given("IT"))
    worker.register_birth()
    worker.run_maintenance_tasks()  # done now, so that the dequeue starts at once
    timer = threading.Timer(LATE, submit.enqueue, (config.connect(redis_url), ["http://late.test/"], ["IT"]))
    started = time.monotonic()
    timer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="rq.worker"):
            job, queue = worker.dequeue_job_and_maintain_ttl(worker.dequeue_timeout)
    finally:
        timer.cancel()
        worker.register_death()
    assert (job.args[0], queue.name) == ("http://late.test/", "IT")
    assert time.monotonic() - started >= LATE
    assert "could not connect" not in caplog.text and "Timeout" not in caplog.text
