"""Samples travel to the center, once each (issue 16, item 1): every file an analysis downloads
is kept whole in Redis under its SHA-256 (up to the worker's --max-sample-bytes), its result
gives its real size and hashes, and `thugrq sample` / `thugrq export` write it out, mode 0600
or into a zip with the password `infected`.

One real analysis of the 5 MB download, on a Redis of this module's own (the shared one is
emptied before each test), serves the tests that read it back; the ten-job and over-the-limit
cases run their own workers on the per-test Redis.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyzipper
import redis

from tests.conftest import BIN
from tests.site import BIG_SAMPLE_BYTES, big_sample, pe_sample
from thugrq import samples
from thugrq.process import free_port
from thugrq.redis_server import start_redis

BIG_SHA256 = hashlib.sha256(big_sample()).hexdigest()
SMALL_SHA256 = hashlib.sha256(pe_sample()).hexdigest()
#: The result TTL of the 5 MB download's job.
BIG_TTL = 7200


@dataclass(frozen=True)
class Center:
    """The module's Redis after one analysis of /big-download: its job and result."""

    environment: dict[str, str]
    connection: redis.Redis
    job_id: str
    document: dict

    def thugrq(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "thugrq"), *args], env=self.environment, capture_output=True,
            timeout=120, **kwargs,
        )


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory, site) -> Iterator[Center]:
    directory = tmp_path_factory.mktemp("samples-center")
    port = free_port()
    server = start_redis(port, directory, persist=False)
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment |= {
        "THUGRQ_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "THUGRQ_HOME": str(directory / "home"),
        "THUGRQ_ALLOW_PRIVATE_TARGETS": "1",
    }
    try:
        connection = redis.Redis(port=port)
        run = Center(environment, connection, "", {}).thugrq
        enqueued = run("enqueue", site.url("/big-download"), "--result-ttl", str(BIG_TTL), text=True)
        assert enqueued.returncode == 0, enqueued.stderr
        worker = subprocess.run(
            [str(BIN / "thugrq-worker"), "--burst"], env=environment, capture_output=True,
            text=True, timeout=600,
        )
        assert worker.returncode == 0, worker.stderr
        job_id = enqueued.stdout.strip()
        shown = run("result", job_id, "--json", text=True)
        assert shown.returncode == 0, shown.stderr
        yield Center(environment, connection, job_id, json.loads(shown.stdout))
    finally:
        server.terminate()
        server.wait(timeout=10)


def sample_keys(connection: redis.Redis) -> list[bytes]:
    return sorted(connection.scan_iter(match=samples.SAMPLE_KEY.format("*")))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_5_mb_download_is_kept_whole_under_its_sha256_with_the_jobs_ttl(center):
    assert sample_keys(center.connection) == [samples.SAMPLE_KEY.format(BIG_SHA256).encode()]
    assert samples.get(center.connection, BIG_SHA256) == big_sample()
    assert BIG_TTL - 600 < center.connection.ttl(samples.SAMPLE_KEY.format(BIG_SHA256)) <= BIG_TTL


def test_the_result_gives_the_5_mb_samples_real_size_and_hashes(center):
    (entry,) = center.document["summary"]["samples"]
    data = big_sample()
    assert entry["size"] == BIG_SAMPLE_BYTES == len(data)
    assert entry["md5"] == hashlib.md5(data).hexdigest()
    assert entry["sha1"] == hashlib.sha1(data).hexdigest()
    assert entry["sha256"] == BIG_SHA256
    assert (entry["type"], entry["kept"], entry["reason"]) == ("PE", True, None)


def test_the_samples_bytes_stay_out_of_the_result(center):
    stored = json.dumps(center.document)
    assert len(stored) < 1024 * 1024
    assert base64.b64encode(big_sample()[:1_000_000]).decode()[:200_000] not in stored
    assert "log.files" in center.document["truncated"]  # Thug's copy, capped as ever


def test_thugrq_sample_writes_the_identical_bytes_mode_0600(center, tmp_path):
    path = tmp_path / "payload.bin"
    written = center.thugrq("sample", BIG_SHA256, "-o", str(path), text=True)
    assert written.returncode == 0, written.stderr
    assert f"wrote {BIG_SAMPLE_BYTES} bytes (sha256 {BIG_SHA256})" in written.stderr
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == BIG_SHA256 and data == big_sample()
    assert mode(path) == 0o600


def test_thugrq_sample_to_stdout_writes_the_identical_bytes(center):
    written = center.thugrq("sample", BIG_SHA256.upper(), "-o", "-")
    assert written.returncode == 0, written.stderr
    assert written.stdout == big_sample()


def test_thugrq_sample_replaces_a_file_only_with_force(center, tmp_path):
    path = tmp_path / "taken"
    path.write_bytes(b"analyst's notes")
    refused = center.thugrq("sample", BIG_SHA256, "-o", str(path), text=True)
    assert refused.returncode != 0 and "exists" in refused.stderr
    assert path.read_bytes() == b"analyst's notes"
    path.chmod(0o644)
    forced = center.thugrq("sample", BIG_SHA256, "-o", str(path), "--force", text=True)
    assert forced.returncode == 0, forced.stderr
    assert path.read_bytes() == big_sample() and mode(path) == 0o600


def test_thugrq_sample_zip_holds_the_identical_bytes_under_the_password_infected(center, tmp_path):
    path = tmp_path / "payload.zip"
    written = center.thugrq("sample", BIG_SHA256, "-o", str(path), "--zip", text=True)
    assert written.returncode == 0, written.stderr
    assert mode(path) == 0o600
    with pyzipper.AESZipFile(path) as archive:
        with pytest.raises(RuntimeError):  # encrypted: nothing comes out without the password
            archive.read(BIG_SHA256)
        archive.setpassword(b"infected")
        assert archive.namelist() == [BIG_SHA256]
        assert archive.read(BIG_SHA256) == big_sample()


def test_thugrq_sample_of_a_hash_redis_does_not_hold_fails(center, tmp_path):
    missing = center.thugrq("sample", "0" * 64, "-o", str(tmp_path / "x"), text=True)
    assert missing.returncode != 0 and "no sample" in missing.stderr
    assert not (tmp_path / "x").exists()
    malformed = center.thugrq("sample", "../../etc/passwd", "-o", str(tmp_path / "x"), text=True)
    assert malformed.returncode != 0 and "not a SHA-256" in malformed.stderr


def test_export_writes_the_jobs_samples_next_to_its_result_mode_0600(center, tmp_path):
    exported = center.thugrq("export", center.job_id, "-o", str(tmp_path), text=True)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / "samples" / BIG_SHA256
    assert exported.stdout.split() == [str(tmp_path / f"{center.job_id}.json"), str(path)]
    assert path.read_bytes() == big_sample()
    assert mode(path) == 0o600


def test_export_zip_holds_the_jobs_samples_under_the_password_infected(center, tmp_path):
    exported = center.thugrq("export", center.job_id, "-o", str(tmp_path), "--zip", text=True)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / "samples.zip"
    assert exported.stdout.split() == [str(tmp_path / f"{center.job_id}.json"), str(path)]
    assert not (tmp_path / "samples").exists() and mode(path) == 0o600
    with pyzipper.AESZipFile(path) as archive:
        archive.setpassword(b"infected")
        assert archive.read(BIG_SHA256) == big_sample()


def test_a_sample_downloaded_by_ten_jobs_is_stored_once_its_ttl_extended(
    thugrq, burst_worker, site, connection
):
    # Run in this order: 4 jobs kept 1000 s, one kept 5000 s, then 5 kept 100 s.
    batches = [(range(0, 4), 1000), (range(4, 5), 5000), (range(5, 10), 100)]
    job_ids = []
    for numbers, ttl in batches:
        urls = [site.url(f"/download?job={n}") for n in numbers]
        enqueued = thugrq("enqueue", *urls, "--result-ttl", str(ttl), check=True)
        job_ids += enqueued.stdout.split()
    worker = burst_worker()
    assert worker.returncode == 0, worker.stderr
    assert len(job_ids) == 10
    for job_id in job_ids:
        document = json.loads(thugrq("result", job_id, "--json", check=True).stdout)
        (entry,) = document["summary"]["samples"]
        assert (entry["sha256"], entry["kept"]) == (SMALL_SHA256, True)
    assert sample_keys(connection) == [samples.SAMPLE_KEY.format(SMALL_SHA256).encode()]
    assert 4000 < connection.ttl(samples.SAMPLE_KEY.format(SMALL_SHA256)) <= 5000
    assert samples.get(connection, SMALL_SHA256) == pe_sample()


def test_a_sample_over_max_sample_bytes_is_not_stored_and_the_result_says_so(
    thugrq, burst_worker, site, connection, env
):
    (job_id,) = thugrq("enqueue", site.url("/download"), check=True).stdout.split()
    worker = burst_worker(env={**env, samples.MAX_SAMPLE_BYTES_VARIABLE: str(len(pe_sample()) - 1)})
    assert worker.returncode == 0, worker.stderr
    document = json.loads(thugrq("result", job_id, "--json", check=True).stdout)
    (entry,) = document["summary"]["samples"]
    assert (entry["kept"], entry["reason"]) == (False, "not kept: too large")
    assert (entry["size"], entry["sha256"]) == (len(pe_sample()), SMALL_SHA256)
    assert sample_keys(connection) == []
    assert "not kept: too large" in thugrq("result", job_id).stdout


# The store itself, on the per-test Redis.


def test_storing_a_sample_again_never_shortens_its_ttl(connection):
    digest = samples.put(connection, b"MZ payload", 1000)
    assert samples.put(connection, b"MZ payload", 100) == digest
    assert 990 < samples.expires_in(connection, digest) <= 1000
    samples.put(connection, b"MZ payload", 3000)
    assert 2990 < samples.expires_in(connection, digest) <= 3000


def test_an_entry_that_is_not_its_sample_is_refused(connection):
    digest = hashlib.sha256(b"the real one").hexdigest()
    connection.set(samples.SAMPLE_KEY.format(digest), zlib.compress(b"another one"))
    with pytest.raises(samples.CorruptSample, match="another SHA-256"):
        samples.get(connection, digest)
    connection.set(samples.SAMPLE_KEY.format(digest), b"not zlib at all")
    with pytest.raises(samples.CorruptSample, match="not zlib"):
        samples.get(connection, digest)


def test_a_sample_is_decompressed_no_further_than_the_bound(connection):
    digest = samples.put(connection, b"\0" * 100_000, 60)
    with pytest.raises(samples.CorruptSample, match="larger than 1000 bytes"):
        samples.get(connection, digest, max_bytes=1000)


def test_without_a_store_samples_are_hashed_not_kept():
    files = [{"type": "PE", "url": "u", "data": base64.b64encode(pe_sample()).decode()}]
    (entry,) = samples.summaries(files, None, 100)
    assert (entry["sha256"], entry["size"]) == (SMALL_SHA256, len(pe_sample()))
    assert (entry["kept"], entry["reason"]) == (False, samples.NO_STORE)
