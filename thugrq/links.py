"""Where the dashboard's analyst pages are, so that the command line can point at them.

The dashboard's base URL is known when `THUGRQ_DASHBOARD_URL` names it (checked: an http(s)
URL, no credentials, query or fragment), or else when the local stack's dashboard runs and
serves the Redis in use (`thugrq.stack.running_dashboard`); otherwise it is not, and nothing
is printed. The pages themselves are served by the dashboard (`thugrq dashboard`).
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit

from thugrq.exceptions import ConfigError

DASHBOARD_URL_VARIABLE = "THUGRQ_DASHBOARD_URL"
#: The analyst pages, under the dashboard's base URL.
JOB_PATH = "/thugrq/job/{}"
GROUP_PATH = "/thugrq/group/{}"


def check_dashboard_url(value: str) -> str:
    """The dashboard's base URL without its trailing slash, or ConfigError saying what to give."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        raise ConfigError(f"invalid {DASHBOARD_URL_VARIABLE} {value!r}: {error}") from error
    problem = None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        problem = "give the dashboard's address, such as https://dash.example:9181/"
    elif any(ch.isspace() for ch in text):
        problem = "it contains spaces"
    elif parts.username is not None or parts.password is not None:
        problem = "credentials do not belong in it (the browser asks for them)"
    elif parts.query or parts.fragment:
        problem = "a base address has no query or fragment"
    if problem:
        raise ConfigError(f"invalid {DASHBOARD_URL_VARIABLE} {value!r}: {problem}")
    return text.rstrip("/")


def dashboard_base(redis_url: str) -> str | None:
    """The dashboard's base URL (no trailing slash) for the Redis at `redis_url`: the
    THUGRQ_DASHBOARD_URL setting, else the local stack's dashboard when it runs and serves that
    Redis, else None. ConfigError when the setting is no dashboard address."""
    configured = os.environ.get(DASHBOARD_URL_VARIABLE)
    if configured:
        return check_dashboard_url(configured)
    from thugrq import stack  # only when needed: it brings the worker's modules

    running = stack.running_dashboard(redis_url)
    return running.rstrip("/") if running else None


def job_page(base: str, job_id: str) -> str:
    """The analysis page of a job on the dashboard at `base`."""
    return base + JOB_PATH.format(quote(job_id, safe=""))


def group_page(base: str, group_id: str) -> str:
    """The page of a group on the dashboard at `base`."""
    return base + GROUP_PATH.format(quote(group_id, safe=""))
