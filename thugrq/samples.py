"""The files analyses download (samples), kept once each in Redis under their SHA-256.

What an analyst wants after the verdict is the payload itself, and the same payload is
downloaded by many jobs: so each file is stored once, under `SAMPLE_KEY` with its SHA-256,
its bytes zlib-compressed (level 6: payloads are often packed, and a worker compresses up to
--max-sample-bytes per file in its horse), nothing else beside it. Its TTL is the result TTL
of the last job that downloaded it, never shortened: a job's samples live as long as its
result. A file over the worker's --max-sample-bytes is only hashed.

The work horse stores a job's samples through the `Store` its context carries (set by the
worker, see thugrq.worker); an analysis without one (a script, a test) hashes them only.
Readers (`thugrq sample`, `thugrq export`, a collector) use `get`, which checks the hash,
and `write_file`/`zipped`, which never execute or open what they write (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import redis

from thugrq.defaults import MAX_DOWNLOAD_BYTES, RESULT_TTL

#: A stored sample: its bytes, zlib-compressed, under the hex SHA-256 of the bytes.
SAMPLE_KEY = "thugrq:sample:{}"
#: The largest file a worker keeps unless `thugrq-worker --max-sample-bytes` says otherwise.
DEFAULT_MAX_SAMPLE_BYTES = 32 * 1024 * 1024
#: The variable that sets the worker's --max-sample-bytes.
MAX_SAMPLE_BYTES_VARIABLE = "THUGRQ_MAX_SAMPLE_BYTES"
#: The password of the zips samples are written into: the malware-sharing convention.
ZIP_PASSWORD = b"infected"
#: The largest sample a reader decompresses: no analysis downloads more (a bomb stops here).
MAX_READ_BYTES = MAX_DOWNLOAD_BYTES
#: Why a sample is not kept, as the result's `reason` says.
TOO_LARGE = "not kept: too large"
NO_STORE = "not kept: analysed without a sample store"
UNREADABLE = "not kept: Thug's copy of the file is unreadable"
TOO_MANY = "not kept: past the samples the summary lists"
COMPRESSION_LEVEL = 6
SHA256 = re.compile(r"[0-9a-f]{64}")

# Extend a key's TTL to ARGV[1] seconds unless it is longer already (or it has none); 0 when
# the key does not exist. One script, so two horses racing never shorten each other's TTL.
_REFRESH = """
local ttl = redis.call('TTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl >= 0 and ttl < tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""


class CorruptSample(ValueError):
    """What Redis holds under a sample's hash is not that sample (undecodable, or other bytes)."""


def check_sha256(text: str) -> str:
    """`text` as a sample's key part (lower-case hex SHA-256), or ValueError: a name read from
    a command line or a result never builds another key."""
    digest = text.strip().lower()
    if not SHA256.fullmatch(digest):
        raise ValueError(f"not a SHA-256 (64 hex digits): {text!r}")
    return digest


def put(connection: redis.Redis, data: bytes, ttl: int) -> str:
    """Store `data` once under its SHA-256 (returned) for at least `ttl` seconds: when it is
    there already, only its TTL is extended (to max(current, ttl)), nothing is compressed."""
    digest = hashlib.sha256(data).hexdigest()
    key = SAMPLE_KEY.format(digest)
    if not refresh(connection, digest, ttl):
        stored = connection.set(key, zlib.compress(data, COMPRESSION_LEVEL), ex=ttl, nx=True)
        if not stored:  # another horse stored it meanwhile: keep the longer TTL
            refresh(connection, digest, ttl)
    return digest


def refresh(connection: redis.Redis, sha256: str, ttl: int) -> bool:
    """Extend a stored sample's TTL to `ttl` seconds unless longer; False when it is not stored."""
    key = SAMPLE_KEY.format(check_sha256(sha256))
    return bool(connection.eval(_REFRESH, 1, key, int(ttl)))


def exists(connection: redis.Redis, sha256: str) -> bool:
    """Whether Redis holds the sample (without reading it)."""
    return bool(connection.exists(SAMPLE_KEY.format(check_sha256(sha256))))


def expires_in(connection: redis.Redis, sha256: str) -> int | None:
    """Seconds until the stored sample expires; None when not stored, -1 when it never does."""
    ttl = connection.ttl(SAMPLE_KEY.format(check_sha256(sha256)))
    return None if ttl == -2 else int(ttl)


def get(connection: redis.Redis, sha256: str, max_bytes: int = MAX_READ_BYTES) -> bytes | None:
    """The sample's bytes, or None when Redis does not hold it (never stored, or expired).

    Raises CorruptSample when the entry does not decompress (within `max_bytes`) to bytes of
    that hash: whoever can write to Redis could have put anything there.
    """
    digest = check_sha256(sha256)
    stored = connection.get(SAMPLE_KEY.format(digest))
    if stored is None:
        return None
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(stored, max_bytes)
        if inflater.unconsumed_tail or not inflater.eof:
            raise CorruptSample(f"sample {digest}: larger than {max_bytes} bytes, or cut short")
    except (zlib.error, TypeError) as error:
        raise CorruptSample(f"sample {digest}: not zlib data ({error})") from error
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptSample(f"sample {digest}: the stored bytes have another SHA-256")
    return data


@dataclass(frozen=True)
class Store:
    """Where a worker's analyses keep their samples: its Redis, its per-file limit, and the
    TTL of the job at hand (`for_job`)."""

    connection: redis.Redis
    max_bytes: int = DEFAULT_MAX_SAMPLE_BYTES
    ttl: int = RESULT_TTL

    def for_job(self, ttl: int | None) -> Store:
        """This store for a job whose result lives `ttl` seconds (None, -1: thugrq's default)."""
        return replace(self, ttl=ttl if ttl and ttl > 0 else RESULT_TTL)

    def keep(self, data: bytes) -> str | None:
        """Store `data`; returns why it was not kept, or None when it was."""
        if len(data) > self.max_bytes:
            return TOO_LARGE
        try:
            put(self.connection, data, self.ttl)
        except redis.RedisError as error:  # Redis full, say: the result is still worth saving
            return f"not kept: Redis refused it ({type(error).__name__}: {error})"
        return None


def summaries(files: Iterable[Any], store: Store | None, limit: int) -> list[dict[str, Any]]:
    """The result's `summary.samples`: for each of Thug's `files` entries (whose base64 `data`
    is the whole file), its real size and hashes, and whether it was kept in `store` (and if
    not, why). Only the first `limit` entries are stored: the summary lists no more."""
    found = []
    for index, entry in enumerate(item for item in files if isinstance(item, Mapping)):
        data = _decoded(entry.get("data"))
        summary: dict[str, Any] = {
            "url": entry.get("url"),
            "type": entry.get("type"),
            "md5": entry.get("md5"),
            "sha1": entry.get("sha1"),
            "sha256": entry.get("sha256"),
            "size": None,
            "kept": False,
            "reason": UNREADABLE,
        }
        if data is not None:
            summary |= {
                "md5": hashlib.md5(data).hexdigest(),  # identifiers, not security
                "sha1": hashlib.sha1(data).hexdigest(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "reason": _keep(data, store, index < limit),
            }
            summary["kept"] = summary["reason"] is None
        found.append(summary)
    return found


def _keep(data: bytes, store: Store | None, listed: bool) -> str | None:
    if store is None:
        return NO_STORE
    return store.keep(data) if listed else TOO_MANY


def _decoded(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def write_file(path: str | Path, data: bytes, force: bool = False) -> None:
    """Write a sample to `path`, mode 0600, never following a link there; an existing file is
    refused (FileExistsError) unless `force`. Nothing is executed or opened but the file."""
    with _create(path, force) as output:
        output.write(data)


def _create(path: str | Path, force: bool) -> BinaryIO:
    """`path` opened for writing, mode 0600 even when it existed (and `force` allows replacing
    it), without following a link there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "wb")


@contextmanager
def zipped(path: str | Path | BinaryIO, force: bool = False) -> Iterator[Callable[[str, bytes], None]]:
    """An AES-256 encrypted zip with the password `infected`, written to `path` (mode 0600,
    refused if it exists unless `force`) or to an open file; yields `add(name, data)`, so
    that samples go in one at a time rather than all held at once."""
    import pyzipper  # the readers' need alone: a worker never writes zips

    if isinstance(path, (str, Path)):
        with _create(path, force) as output, zipped(output) as add:
            yield add
        return
    with pyzipper.AESZipFile(
        path, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(ZIP_PASSWORD)

        def add(name: str, data: bytes) -> None:
            info = archive.zipinfo_cls(name, date_time=time.localtime()[:6])
            info.external_attr = 0o600 << 16  # unpacked, a sample is not executable
            info.compress_type = pyzipper.ZIP_DEFLATED
            archive.writestr(info, data)

        yield add
