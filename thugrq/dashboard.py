"""rq-dashboard configured for thugrq, behind `thugrq dashboard` and the local stack.

rq-dashboard (0.9) is used as it ships, with thugrq's settings: the Redis from thugrq's
configuration, the JSON serializer thugrq's jobs use, HTTP basic auth when credentials are
given, and 127.0.0.1 unless credentials protect another address. Two adapters make it fit:

- `DashboardWorker`: rq-dashboard looks workers up with `Worker.all(connection=...)` and no
  serializer, so RQ reads a busy worker's current job with pickle and `/data/workers.json`
  answers 500 (the Workers page then shows nothing) while any worker is busy with a thugrq
  job. The dashboard's `Worker` is replaced by this subclass, which reads workers (and their
  jobs) as thugrq's: JSON, `ThugrqJob`, `ThugrqQueue`. Nothing else in rq-dashboard changes,
  and an rq-dashboard that passes a serializer itself keeps working.
- `escape_data`: rq-dashboard's pages insert the JSON they poll as HTML, unescaped: a job's
  description, result (keys and values) and error, a queue's name, a worker's name, queues
  and versions, some inside attributes. A thugrq result carries the analysed page's own
  markup, and anyone who may write `rq:*` keys chooses the rest, so either would run script
  in the analyst's browser. Every string of that JSON that the page does not escape itself
  (`INSERTIONS` says where each page puts what) is HTML-escaped before it leaves the server,
  quotes too where it goes into attributes.

Around it, `thugrq.dashboard_guard`: only the Hosts it serves are answered (`accepted_hosts`;
DNS rebinding), state changes only by POST from its own pages (CSRF), and every response
carries a strict Content-Security-Policy (with rq-dashboard's templates compiled on the
server, since that policy forbids the browser's eval), so that what escaping missed still
runs nothing.

thugrq's own analyst pages (thugrq.pages: an analysis, a group, the fleet) are served beside
rq-dashboard's, under `/thugrq/`, behind the same guards.
"""

from __future__ import annotations

import errno
import hmac
import html
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, request
from rq import Worker
from rq.serializers import JSONSerializer
from werkzeug.serving import make_server

from thugrq import config
from thugrq import dashboard_guard as guard, pages
from thugrq import submit_form
from thugrq.exceptions import ConfigError
from thugrq.job import ThugrqJob
from thugrq.queue import ThugrqQueue, thugrq_classes

DEFAULT_BIND = "127.0.0.1"
REALM = "thugrq dashboard"
#: What else a loopback dashboard is called (a browser may use any of them).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Insertion:
    """How a page of rq-dashboard's inserts one data endpoint's JSON: every string as HTML,
    unescaped, except those at the `page_escapes` key paths. `quote`: some go into attribute
    values."""

    quote: bool
    page_escapes: frozenset[tuple[str, ...]] = frozenset()


#: rq-dashboard's data endpoints, as its pages insert them (templates/rq_dashboard/*.html).
INSERTIONS = {
    # The queue's name, and its links in href attributes.
    "rq_dashboard.list_queues": Insertion(quote=True),
    # Name, queues, current job; version, python_version and job id in title attributes.
    "rq_dashboard.list_workers": Insertion(
        quote=True, page_escapes=frozenset({("workers", "current_job", "description")})
    ),
    # Ids (also in an attribute), dates, page links; the page escapes description and error.
    "rq_dashboard.list_jobs": Insertion(
        quote=True, page_escapes=frozenset({("jobs", "description"), ("jobs", "exc_info")})
    ),
    # No attribute: the result shows as JSON, where a quote would read as \".
    "rq_dashboard.job_info": Insertion(quote=False),
}


class DashboardWorker(Worker):
    """RQ's worker as the dashboard reads it: thugrq's JSON jobs and queues, never pickle."""

    job_class = ThugrqJob
    queue_class = ThugrqQueue

    @classmethod
    def find_by_key(  # type: ignore[override]
        cls, worker_key: str, connection: Any, job_class: Any = None, queue_class: Any = None,
        serializer: Any = None,
    ) -> Worker | None:
        # `Worker.all` comes here for each worker; RQ would default the serializer to pickle.
        classes = {"job_class": job_class, "queue_class": queue_class, "serializer": serializer}
        return super().find_by_key(worker_key, connection, **thugrq_classes(classes, *classes))


def install_adapters() -> None:
    """Make rq-dashboard read thugrq's jobs and workers (see the module's docstring)."""
    rq_dashboard.web.config.serializer = JSONSerializer
    rq_dashboard.web.Worker = DashboardWorker


def escape_strings(
    value: Any, quote: bool, keep: Collection[tuple[str, ...]] = (), path: tuple[str, ...] = ()
) -> Any:
    """`value` with every string in it, dict keys included, HTML-escaped (quotes too with
    `quote`), except at the key paths in `keep` (a list's items are at the list's path)."""
    if path in keep:
        return value
    if isinstance(value, str):
        return html.escape(value, quote=quote)
    if isinstance(value, dict):
        return {
            html.escape(key, quote=quote): escape_strings(item, quote, keep, (*path, key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [escape_strings(item, quote, keep, path) for item in value]
    return value


def escape_data(response: Response) -> Response:
    """HTML-escape the JSON that rq-dashboard's pages insert as HTML (see `INSERTIONS`)."""
    insertion = INSERTIONS.get(request.endpoint or "")
    if insertion is None or not response.is_json:
        return response
    data = escape_strings(response.get_json(), insertion.quote, insertion.page_escapes)
    response.set_data(response.json_module.dumps(data))
    return response


def basic_auth(username: str, password: str) -> Callable[[], Response | None]:
    """A before-request hook answering 401 unless the request carries these credentials."""
    expected = (username.encode(), password.encode())

    def check() -> Response | None:
        auth = request.authorization
        given = (
            ((auth.username or "").encode(), (auth.password or "").encode()) if auth else (b"", b"")
        )
        # Compare both, always, in constant time.
        user_ok = hmac.compare_digest(given[0], expected[0])
        password_ok = hmac.compare_digest(given[1], expected[1])
        if auth is not None and user_ok and password_ok:
            return None
        return Response(
            "thugrq dashboard: give the username and password it was started with\n",
            401,
            {"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )

    return check


def build_app(
    redis_url: str,
    hosts: Collection[guard.HostKey],
    username: str | None = None,
    password: str | None = None,
) -> Flask:
    """rq-dashboard as a Flask app on `redis_url`, for thugrq's JSON jobs, answering `hosts`
    only (see `accepted_hosts`), behind thugrq's guards (see `thugrq.dashboard_guard`).

    With a username and password, every request (pages, data and static files) needs them,
    and the submit form (`thugrq.submit_form`) is served; without, it does not exist.
    """
    if bool(username) != bool(password):
        raise ConfigError("give both a username and a password, or neither")
    install_adapters()
    # rq-dashboard's pages ask the app's own `static` for some files, its blueprint for others:
    # both serve rq-dashboard's static folder.
    app = Flask(__name__, static_folder=str(Path(rq_dashboard.__file__).parent / "static"))
    app.config["RQ_DASHBOARD_REDIS_URL"] = config.check_redis_url(redis_url)
    app.json.sort_keys = False  # a result document keeps its order: the summary before the log
    app.before_request(guard.check_host(hosts))
    if username and password:
        app.before_request(basic_auth(username, password))
    app.before_request(guard.check_state_change)
    app.after_request(escape_data)
    app.after_request(guard.secure_headers)
    app.register_blueprint(rq_dashboard.blueprint)
    app.register_blueprint(pages.blueprint)  # thugrq's analyst pages, under /thugrq/
    if username and password:  # only an authenticated analyst may queue work from a page
        submit_form.register(app)
    rq_dashboard.web.setup_rq_connection(app)
    return app


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) only ever means this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses
    )


def check_bind(host: str, username: str | None, password: str | None) -> None:
    """Refuse (ConfigError) to serve another address than loopback without credentials."""
    if bool(username) != bool(password):
        raise ConfigError("give both --username and --password, or neither")
    if not username and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without credentials: anyone who reaches "
            "it could read every analysis and delete jobs; give --username and --password, "
            f"or bind {DEFAULT_BIND}"
        )


def is_wildcard(host: str) -> bool:
    """Whether `host` is the address that binds every address (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def accepted_hosts(bind: str, port: int, allowed: Iterable[str] = ()) -> frozenset[guard.HostKey]:
    """The Hosts the dashboard answers, with its port: its bind address, loopback's names on
    loopback, any address and loopback's names on a wildcard bind; and the operator's `allowed`
    ones (NAME on any port, or NAME:PORT)."""
    names = {bind.strip("[]").lower()}
    if is_wildcard(bind):
        names |= {guard.ANY_ADDRESS, *LOOPBACK_NAMES}
    elif is_loopback(bind):
        names |= set(LOOPBACK_NAMES)
    try:
        extra = {guard.host_key(entry) for entry in allowed}
    except ValueError as error:
        raise ConfigError(f"--allowed-host: {error}") from error
    return frozenset({(name, port) for name in names} | extra)


def address(host: str, port: int) -> str:
    """The dashboard's URL for a bind address and port."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or one ConfigError saying why not."""
    try:
        info = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(info[0], socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ConfigError(f"cannot listen on {host} port {port}: {error}") from error
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(info[4])
        listener.listen(128)
    except OSError as error:
        listener.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise ConfigError(f"cannot listen on {host} port {port}: {reason}") from error
    return listener


def serve(
    redis_url: str,
    host: str = DEFAULT_BIND,
    port: int = config.DEFAULT_DASHBOARD_PORT,
    username: str | None = None,
    password: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve the dashboard until interrupted (SIGINT or SIGTERM end it cleanly), for the Hosts
    of `accepted_hosts`.

    ConfigError when the bind is refused (see `check_bind`), an allowed host is no host name,
    or the port cannot be listened on.
    """
    check_bind(host, username, password)
    app = build_app(redis_url, accepted_hosts(host, port, allowed_hosts), username, password)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per poll
    listener = listen(host, port)
    with listener:  # werkzeug serves a duplicate of it
        server = make_server(host.strip("[]"), port, app, threaded=True, fd=listener.fileno())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if on_ready:
        on_ready(address(host, server.port))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
