"""The dashboard's submit form (`/thugrq/submit`), served only when the dashboard has
credentials: URLs, countries, personalities and the common Thug options, checked by the code
`thugrq enqueue` uses (thugrq.submit.Plan, thugrq.options, thugrq.countries), enqueued as one
group, after which the analyst lands on the group's page (303 to `/thugrq/group/<id>`).

Without credentials nothing of it is registered (`/thugrq/submit` answers 404): a dashboard
that anyone reaching its port may use must not let them queue work.

A POST must pass, in turn: basic auth (thugrq.dashboard), the Origin/Referer check of
thugrq.dashboard_guard, then this form's token, the HMAC-SHA256 under a secret made when the
app starts of a random session id that a cookie of the form's own holds (HttpOnly,
SameSite=Strict, path /thugrq/submit); a token that is not its cookie's is refused with 403,
so a page of another site, which can neither read the token nor set the cookie, cannot submit.
Invalid input shows the form again with the message (400), and nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request

from thugrq import config, links, pages, submit
from thugrq import dashboard_guard as guard
from thugrq.exceptions import ConfigError, InvalidInput
from thugrq.options import Options
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES

PATH = "/thugrq/submit"
COOKIE = "thugrq_form"
#: A session id as `secrets.token_urlsafe(32)` makes it.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
#: The analysis options the form offers, in its order (the others keep their defaults).
FORM_OPTIONS = (
    "timeout", "referer", "threshold", "delay", "connect_timeout", "events", "extensive",
    "broken_url", "web_tracking",
)
#: The largest form accepted (about 5,000 URLs of 100 characters; Flask's own bound on a field).
MAX_FORM_BYTES = 500_000
#: Where the app keeps the form's state (its secret).
EXTENSION = "thugrq.submit_form"

FIELDS = {field.name: field for field in dataclasses.fields(Options)}


def register(app: Flask) -> None:
    """Serve the form on `app` (a dashboard with credentials: it enqueues into the dashboard's
    Redis, thugrq.pages.connection), with a secret of its own for the form's tokens."""
    app.extensions[EXTENSION] = {"secret": secrets.token_bytes(32)}
    form = Blueprint("thugrq_submit", __name__, template_folder="templates")
    form.add_url_rule(PATH, "form", show, methods=["GET"])
    form.add_url_rule(PATH, "submit", receive, methods=["POST"])
    # The pages' navigation (thugrq/base.html) links to the form where it exists.
    form.app_context_processor(lambda: {"submit_form_path": request.script_root + PATH})
    app.register_blueprint(form)


def state() -> dict[str, Any]:
    return current_app.extensions[EXTENSION]


def token(session_id: str) -> str:
    """The form token of a session: the HMAC of its id under the app's secret."""
    return hmac.new(state()["secret"], session_id.encode(), hashlib.sha256).hexdigest()


def session_id() -> str | None:
    """The session id of the form's cookie, if the request has a well-formed one."""
    value = request.cookies.get(COOKIE, "")
    return value if SESSION_ID.fullmatch(value) else None


def option_fields(values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What the template shows of each option of the form: its name, help, kind, bounds and the
    value to show (`values`, the form as sent, else the option's default)."""
    shown = []
    for name in FORM_OPTIONS:
        field = FIELDS[name]
        kind, check = field.metadata["kind"], field.metadata["check"]
        default = field.default
        if values is not None:
            value: Any = (name in values) if kind is bool else values.get(name, "")
        else:
            value = default if kind is bool else ("" if default in (None, ()) else default)
        shown.append({
            "name": name, "label": name.replace("_", " "), "help": field.metadata["help"],
            "kind": kind.__name__, "value": value,
            "bounds": getattr(check, "bounds", None) if kind is int else None,
        })
    return shown


def options_from(form: Any) -> Options:
    """The form's options as `Options`, checked (InvalidInput names the first one refused)."""
    values: dict[str, Any] = {}
    for name in FORM_OPTIONS:
        kind, text = FIELDS[name].metadata["kind"], form.get(name, "").strip()
        if kind is bool:
            values[name] = name in form
        elif not text:
            continue  # the option's default
        elif kind is int:
            try:
                values[name] = int(text)
            except ValueError:
                low, high = FIELDS[name].metadata["check"].bounds
                raise InvalidInput(
                    f"invalid {name} {text[:40]!r}: give a whole number from {low} to {high}"
                ) from None
        elif kind is list:
            values[name] = tuple(item.strip().lower() for item in text.split(",") if item.strip())
        else:
            values[name] = text
    return Options(**values)


def plan_from(form: Any) -> submit.Plan:
    """The form as the plan `thugrq enqueue` would make of the same input, checked whole."""
    urls = submit.read_urls(form.get("urls", "").splitlines(), "URLs")
    if not urls:
        raise InvalidInput("no URL given: write one or more URLs, one a line")
    # By code or name (Plan checks them as `thugrq enqueue --queue` does); none: generic.
    queues = [name.strip() for name in re.split(r"[,\n]", form.get("countries", "")) if name.strip()]
    if "generic" in form or not queues:
        queues.append(config.GENERIC_QUEUE)
    return submit.Plan(urls, queues, options_from(form), form.getlist("useragent"))


def page(message: str | None = None, status: int = 200) -> Response:
    """The form (with the input as sent and `message` after a refusal), and its cookie."""
    current = session_id()
    new = current or secrets.token_urlsafe(32)
    sent = request.form if request.method == "POST" else None
    response = current_app.make_response((
        render_template(
            "thugrq/submit.html", message=message, token=token(new), action=request.script_root + PATH,
            urls=sent.get("urls", "") if sent else "",
            countries=sent.get("countries", "") if sent else "",
            generic=bool(sent and "generic" in sent),
            chosen=sent.getlist("useragent") if sent else [DEFAULT_PERSONALITY],
            personalities=PERSONALITIES, options=option_fields(sent),
        ),
        status,
    ))
    # Else the browser sends the form's POST with `Origin: null`, which the CSRF check refuses.
    response.headers["Referrer-Policy"] = guard.FORM_REFERRER_POLICY
    if new != current:
        response.set_cookie(
            COOKIE, new, path=PATH, httponly=True, samesite="Strict", secure=request.is_secure
        )
    return response


def show() -> Response:
    """GET: the empty form."""
    return page()


def receive() -> Response:
    """POST: the form's token checked, then its input; enqueued whole, or refused whole."""
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return Response(
            f"thugrq dashboard: the form is larger than {MAX_FORM_BYTES} bytes: send fewer URLs\n",
            413, mimetype="text/plain",
        )
    current = session_id()
    given = request.form.get("token", "")
    if not current or not hmac.compare_digest(given.encode(), token(current).encode()):
        return Response(
            "thugrq dashboard: refusing a submission without this session's form token: load "
            f"the form again ({PATH}) and send it from there\n", 403, mimetype="text/plain",
        )
    try:
        plan = plan_from(request.form)
        submission = plan.enqueue(pages.connection())
    except InvalidInput as error:
        return page(str(error), 400)
    except (ConfigError, redis.exceptions.RedisError) as error:
        return page(f"nothing was enqueued: {error}", 503)
    return redirect(request.script_root + links.GROUP_PATH.format(submission.group), 303)
