"""Getting the files analyses downloaded out of Redis: `sample`, and the samples `export`
writes next to each result (`SampleExport`).

What is written is live malware, as it came: written mode 0600, never executed nor opened;
`--zip` puts it in an AES-encrypted zip with the password `infected` instead, the way
samples are shared, so that no scanner or careless click meets it bare.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis

from thugrq import samples
from thugrq.cli.helpers import Failure, RedisTarget, failures, open_store, pass_redis, store_option
from thugrq.store import Store, nor_in


@click.command()
@click.argument("sha256", metavar="SHA256")
@click.option(
    "--output", "-o", required=True, metavar="FILE",
    help="Where to write the sample (`-` for stdout); written mode 0600.",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option(
    "--zip", "as_zip", is_flag=True,
    help="Write the sample (named by its SHA-256) into an AES-256 encrypted zip with the "
    "password `infected` (the malware-sharing convention) instead.",
)
@store_option
@pass_redis
def sample(
    target: RedisTarget, sha256: str, output: str, force: bool, as_zip: bool, store: str | None
) -> None:
    """Write a downloaded file (a sample) that Redis keeps, by its SHA-256, as the results'
    summary.samples list it (those with "kept": true); one Redis no longer holds is read from
    the collected store (--store, `thugrq collect`).

    The bytes are checked against the hash before anything is written; FILE is created mode
    0600 and never executed or opened. Exits non-zero when neither holds the sample (never
    kept, or expired with the results of the jobs that downloaded it).
    """
    with failures(ValueError):
        digest = samples.check_sha256(sha256)
        data = samples.get(target.connect(), digest)  # CorruptSample is a ValueError
        if data is None and store:
            data = open_store(store).read_sample(digest)
    if data is None:
        nor = f" nor in the store at {store}" if store else ""
        raise Failure(f"no sample {digest} in Redis{nor} (never kept, or expired)")
    if output == "-":
        sys.stdout.buffer.write(_zip_of({digest: data}) if as_zip else data)
        sys.stdout.buffer.flush()
        return
    try:
        if as_zip:
            with samples.zipped(output, force) as add:
                add(digest, data)
        else:
            samples.write_file(output, data, force)
    except FileExistsError as error:
        raise Failure(f"{output} exists: not replaced without --force") from error
    except OSError as error:
        raise Failure(f"cannot write {output}: {error.strerror or error}") from error
    click.echo(f"wrote {len(data)} bytes (sha256 {digest}) to {output}", err=True)


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with samples.zipped(buffer) as add:
        for name, data in members.items():
            add(name, data)
    return buffer.getvalue()


class SampleExport:
    """The samples of the jobs `export` writes: under DIR/samples/<sha256> (mode 0600), or with
    --zip into DIR/samples.zip; each once, however many jobs downloaded it; from Redis, else
    from the collected `store` when there is one."""

    def __init__(
        self, connection: redis.Redis, folder: Path, as_zip: bool, store: Store | None = None
    ) -> None:
        self.connection, self.folder, self.as_zip, self.store = connection, folder, as_zip, store
        self.written: set[str] = set()
        self.missing = 0
        self._zip: Any = None
        self._add: Callable[[str, bytes], None] | None = None

    def __enter__(self) -> SampleExport:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._zip is not None:
            self._zip.__exit__(*exc)
            click.echo(str(self.folder / "samples.zip"))

    def add(self, job_id: str, document: dict[str, Any]) -> None:
        """Write the kept samples of one job's result; name on stderr those Redis (and the
        store) lost."""
        for entry in (document.get("summary") or {}).get("samples") or []:
            if not isinstance(entry, dict) or not entry.get("kept"):
                continue
            try:
                digest = samples.check_sha256(str(entry.get("sha256")))
                if digest in self.written:
                    continue
                data = samples.get(self.connection, digest)
                if data is None and self.store is not None:
                    data = self.store.read_sample(digest)
            except ValueError as error:  # a malformed hash, or a corrupt entry
                click.echo(f"{job_id}: sample not exported: {error}", err=True)
                self.missing += 1
                continue
            if data is None:
                click.echo(f"{job_id}: sample {digest} no longer in Redis (expired){nor_in(self.store)}",
                           err=True)
                self.missing += 1
                continue
            self._write(digest, data)
            self.written.add(digest)

    def _write(self, digest: str, data: bytes) -> None:
        if self.as_zip:
            if self._add is None:  # the zip is made for the first sample, replacing an old one
                self._zip = samples.zipped(self.folder / "samples.zip", force=True)
                self._add = self._zip.__enter__()
            self._add(digest, data)
            return
        (self.folder / "samples").mkdir(mode=0o700, exist_ok=True)
        path = self.folder / "samples" / digest
        try:
            samples.write_file(path, data)
        except FileExistsError:  # exported before: the same hash, the same bytes
            return
        click.echo(str(path))


COMMANDS = (sample,)
