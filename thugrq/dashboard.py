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
- `escape_job_data`: rq-dashboard inserts a job's description, result and error into the Job
  page as HTML, unescaped. A thugrq result carries the analysed page's own markup, so a
  hostile page would run its scripts, or load its images, in the analyst's browser. The job
  data the Job page reads is HTML-escaped before it leaves the server, and so is the call
  string (with the URL) that the Workers page inserts for a busy worker.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, request
from rq import Worker
from rq.serializers import JSONSerializer
from werkzeug.serving import make_server

from thugrq import config
from thugrq.queue import ThugrqJob, ThugrqQueue

DEFAULT_BIND = "127.0.0.1"
REALM = "thugrq dashboard"
#: rq-dashboard's endpoints whose JSON its pages insert as HTML without escaping.
JOB_DATA_ENDPOINT = "rq_dashboard.job_info"
WORKERS_DATA_ENDPOINT = "rq_dashboard.list_workers"


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
        return super().find_by_key(
            worker_key, connection, job_class=job_class, queue_class=queue_class,
            serializer=serializer or JSONSerializer,
        )


def install_adapters() -> None:
    """Make rq-dashboard read thugrq's jobs and workers (see the module's docstring)."""
    rq_dashboard.web.config.serializer = JSONSerializer
    rq_dashboard.web.Worker = DashboardWorker


def escape_text(text: str) -> str:
    """`text` safe to insert into an element's content as HTML (what those pages do)."""
    return html.escape(text, quote=False)


def escape_strings(value: Any) -> Any:
    """`value` with every string in it HTML-escaped, for a page that inserts it as HTML."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {key: escape_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape_strings(item) for item in value]
    return value


def escape_job_data(response: Response) -> Response:
    """HTML-escape the job data that rq-dashboard's pages insert unescaped."""
    if request.endpoint not in (JOB_DATA_ENDPOINT, WORKERS_DATA_ENDPOINT) or not response.is_json:
        return response
    data = response.get_json(silent=True)
    if not isinstance(data, dict):
        return response
    if request.endpoint == JOB_DATA_ENDPOINT:
        data = escape_strings(data)
    else:
        # Only the call string: the page escapes the description itself.
        for worker in data.get("workers", []):
            current = worker.get("current_job")
            if isinstance(current, dict) and isinstance(current.get("call_string"), str):
                current["call_string"] = escape_text(current["call_string"])
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
    redis_url: str, username: str | None = None, password: str | None = None
) -> Flask:
    """rq-dashboard as a Flask app on `redis_url`, for thugrq's JSON jobs.

    With a username and password, every request (pages, data and static files) needs them.
    """
    if bool(username) != bool(password):
        raise config.ConfigError("give both a username and a password, or neither")
    install_adapters()
    # rq-dashboard's pages ask the app's own `static` for some files, its blueprint for others:
    # both serve rq-dashboard's static folder.
    app = Flask(__name__, static_folder=str(Path(rq_dashboard.__file__).parent / "static"))
    app.config["RQ_DASHBOARD_REDIS_URL"] = config.check_redis_url(redis_url)
    app.json.sort_keys = False  # a result document keeps its order: the summary before the log
    if username and password:
        app.before_request(basic_auth(username, password))
    app.after_request(escape_job_data)
    app.register_blueprint(rq_dashboard.blueprint)
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
        raise config.ConfigError("give both --username and --password, or neither")
    if not username and not is_loopback(host):
        raise config.ConfigError(
            f"refusing to serve the dashboard on {host} without credentials: anyone who reaches "
            "it could read every analysis and delete jobs; give --username and --password, "
            f"or bind {DEFAULT_BIND}"
        )


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
        raise config.ConfigError(f"cannot listen on {host} port {port}: {error}") from error
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(info[4])
        listener.listen(128)
    except OSError as error:
        listener.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise config.ConfigError(f"cannot listen on {host} port {port}: {reason}") from error
    return listener


def serve(
    redis_url: str,
    host: str = DEFAULT_BIND,
    port: int = config.DEFAULT_DASHBOARD_PORT,
    username: str | None = None,
    password: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard until interrupted (SIGINT or SIGTERM end it cleanly).

    ConfigError when the bind is refused (see `check_bind`) or the port cannot be listened on.
    """
    check_bind(host, username, password)
    app = build_app(redis_url, username, password)
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
