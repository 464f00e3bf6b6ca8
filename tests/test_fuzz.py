"""Hostile job hashes written straight into Redis: each ends failed or refused, the worker keeps
serving, and nothing is written outside the analysis' scratch area."""

from __future__ import annotations

import json
import os
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import wait_for, with_dns
from thugrq import job

MARKER_DIR = Path("/tmp")
MARKER_PREFIX = f"thugrq-fuzz-{uuid.uuid4().hex[:8]}"

functions = st.sampled_from(
    [
        "os.system", "builtins.eval", "builtins.exec", "subprocess.call", "shutil.rmtree",
        "thugrq.analysis.analyze", "thugrq.jobs.analyze", "thugrq.analysis.load_thug",
        "thugrq.jobs.load_thug", "thugrq.worker.main", "", "eval",
        "os.path.join", "__import__", "rq.job.Job.fetch", "a" * 5000,
    ]
)
# Targets never leave loopback, and names are never resolved: no traffic but to 127.0.0.0/8.
urls = st.sampled_from(
    [
        "http://127.0.0.1:9/", "http://[::1]:9/", "http://[::ffff:127.0.0.1]:9/", "not a url",
        "file:///etc/passwd", "javascript:alert(1)", "http://127.0.0.1:9/" + "a" * 10000, "",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
hostile_commands = st.builds(
    lambda name: f"touch {MARKER_DIR / (MARKER_PREFIX + name)}", st.sampled_from(["a", "b", "c"])
)
arguments = st.one_of(
    st.tuples(urls, st.dictionaries(st.sampled_from(["useragent", "timeout", "logdir", "output", "proxy", "x"]), json_values, max_size=3)).map(list),
    st.lists(hostile_commands, max_size=2),
    st.lists(json_values, max_size=3),
    json_values,
)


def compressed_json(value) -> bytes:
    return zlib.compress(json.dumps(value).encode())


data_fields = st.one_of(
    st.builds(lambda f, a, k: compressed_json([f, None, a, k]), functions, arguments, st.dictionaries(st.text(max_size=5), json_values, max_size=2)),
    st.builds(lambda f, a: compressed_json([f, "instance", a, {}]), functions, arguments),
    st.builds(compressed_json, json_values),
    st.binary(max_size=200),
    st.just(zlib.compress(b"[" * 100_000)),
    st.just(zlib.compress(b"0" * 20_000_000)),  # a 20 MB bomb in 20 KB
    st.builds(lambda a: json.dumps(["os.system", None, a, {}]).encode(), arguments),  # not compressed
)
other_fields = st.dictionaries(
    st.sampled_from(
        [
            "created_at", "enqueued_at", "timeout", "result_ttl", "failure_ttl", "ttl", "meta",
            "retries_left", "retry_intervals", "dependency_ids", "dependency_id",
            "success_callback_name", "failure_callback_name", "stopped_callback_name", "webhooks",
            "repeats_left", "repeat_intervals", "status", "description", "group_id", "timeout_secs",
            "success_callback_timeout", "allow_dependency_failures", "enqueue_at_front",
        ]
    ),
    st.one_of(
        st.binary(max_size=30), st.text(max_size=30).map(str.encode),
        st.sampled_from([b"-1", b"0", b"nan", b"1e309", b"os.system", b"[]", b"{}", b"[1,2]", b'["x"]',
                         json.dumps([{"url": "http://127.0.0.1:9/", "job_status": "failed"}]).encode()]),
        st.just(b"9" * 5000),
    ),
    max_size=6,
)


@pytest.fixture(scope="module")
def fuzz_worker(tmp_path_factory):
    """One worker (private targets refused), on its own private Redis, for every example."""
    import os
    import subprocess

    import redis

    from tests.conftest import BIN, stop_all
    from thugrq.process import free_port
    from thugrq.redis_server import start_redis

    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("fuzz-redis"), persist=False)
    url = f"redis://127.0.0.1:{port}/0"
    environment = {k: v for k, v in os.environ.items() if k != "THUGRQ_ALLOW_PRIVATE_TARGETS"}
    environment["THUGRQ_REDIS_URL"] = url
    log = open(tmp_path_factory.mktemp("fuzz-worker") / "worker.log", "w+")
    worker = subprocess.Popen(
        [str(BIN / "thugrq-worker"), "--queue", "generic", "--name", "fuzz"],
        env=with_dns(environment), stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    worker.log = log
    connection = redis.Redis.from_url(url)
    wait_for(lambda: connection.exists("rq:worker:fuzz"))
    try:
        yield connection, worker, environment
    finally:
        stop_all([worker])
        log.seek(0)
        print(log.read()[-5000:])
        server.terminate()
        server.wait(timeout=10)


def push(connection, fields: dict[bytes | str, bytes]) -> str:
    job_id = uuid.uuid4().hex
    mapping = {"status": b"queued", "origin": b"generic", **fields}
    connection.hset(f"rq:job:{job_id}", mapping=mapping)
    connection.sadd("rq:queues", "rq:queue:generic")
    connection.rpush("rq:queue:generic", job_id)
    return job_id


def ended(connection, job_id: str) -> bool:
    return connection.hget(f"rq:job:{job_id}", "status") in (b"failed", b"finished")


@settings(
    max_examples=int(os.environ.get("THUGRQ_FUZZ_EXAMPLES", "500")), deadline=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # every failure is a real one: no time spent shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=data_fields, fields=other_fields)
def test_hostile_job_hashes_end_failed_or_refused(fuzz_worker, data, fields):
    connection, worker, _ = fuzz_worker
    job_id = push(connection, {**fields, "data": data, "status": b"queued", "origin": b"generic"})
    try:
        wait_for(lambda: ended(connection, job_id), timeout=60, interval=0.02)
    finally:
        assert worker.poll() is None, "the worker died"
    assert worker.poll() is None
    status = connection.hget(f"rq:job:{job_id}", "status")
    if status == b"finished":  # only a well-formed analysis of a refused target can finish
        assert job.result(connection, job_id)[1]["status"] == "refused"
    assert not list(MARKER_DIR.glob(MARKER_PREFIX + "*"))


# Raw queue entries: ids of any bytes, naming job keys of every Redis type.
entry_ids = st.one_of(
    st.binary(min_size=1, max_size=80),
    st.text(min_size=1, max_size=40).map(str.encode),
    st.sampled_from([b"<img src=x onerror=alert(1)>", b"\xff\xfe-bad", b"a" * 5000, b"x:y", b"../x", b" "]),
    st.uuids().map(lambda u: u.hex.encode()),
)
job_keys = st.sampled_from(["none", "string", "list", "set", "zset", "stream", "hash"])


def write_key(connection, key: bytes, kind: str) -> None:
    writers = {
        "string": lambda: connection.set(key, b"x"),
        "list": lambda: connection.rpush(key, b"x"),
        "set": lambda: connection.sadd(key, b"x"),
        "zset": lambda: connection.zadd(key, {b"x": 1}),
        "stream": lambda: connection.xadd(key, {b"x": b"y"}),
        "hash": lambda: connection.hset(key, mapping={"status": "queued", "origin": "generic", "data": b"\x00"}),
    }
    connection.delete(key)
    if kind in writers:
        writers[kind]()


def settled(connection) -> bool:
    """The queue is empty, the worker is not analysing, and its intermediate list holds no job
    (RQ leaves ids of missing jobs there for its next cleaning)."""
    taken = connection.lrange("rq:queue:generic:intermediate", 0, -1)
    return (
        connection.llen("rq:queue:generic") == 0
        and not any(connection.exists(b"rq:job:" + job_id) for job_id in taken)
        and connection.hget("rq:worker:fuzz", "state") != b"busy"
    )


@settings(
    max_examples=int(os.environ.get("THUGRQ_FUZZ_EXAMPLES", "500")), deadline=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entry=entry_ids, kind=job_keys)
def test_hostile_queue_entries_never_stop_the_worker(fuzz_worker, entry, kind):
    connection, worker, _ = fuzz_worker
    connection.lrem("rq:queue:generic:intermediate", 0, entry)  # left by an earlier example
    write_key(connection, b"rq:job:" + entry, kind)
    connection.rpush("rq:queue:generic", entry)
    try:
        wait_for(lambda: settled(connection), timeout=60, interval=0.01)
    finally:
        assert worker.poll() is None, "the worker died"


def test_worker_still_serves_after_the_fuzzing(fuzz_worker):
    connection, worker, environment = fuzz_worker
    import subprocess

    from tests.conftest import BIN

    enqueued = subprocess.run(
        [str(BIN / "thugrq"), "enqueue", "http://127.0.0.1:9/"], env=environment,
        capture_output=True, text=True, check=True,
    )
    job_id = enqueued.stdout.strip()
    wait_for(lambda: connection.hget(f"rq:job:{job_id}", "status") == b"finished", timeout=60)
    assert worker.poll() is None
