"""thugrq's analyst pages, served by the dashboard (`thugrq dashboard`) beside rq-dashboard.

A Flask blueprint under `/thugrq/`, rendered on the server from Jinja templates
(`thugrq/templates/thugrq/`, each extending `base.html`) and one stylesheet
(`thugrq/static/thugrq.css`); no script at all, so the dashboard's Content-Security-Policy
(thugrq.dashboard_guard) holds on them as it stands. Pages that wait for work refresh
themselves (`<meta http-equiv="refresh">`).

- `/thugrq/job/<id>`: one analysis: its verdict card, the redirect chain drawn as SVG, the
  fetched locations, the page markup and code snippets as text, the raw result document last;
  a job that has not finished shows where it stands and why.
- `/thugrq/group/<id>`: a group's matrix URL x (queue, personality), cells that differ from
  the rest of their row marked by the comparison `thugrq group` makes (thugrq.groups,
  thugrq.compare), read within the same bounds.
- `/thugrq/fleet`: per country, the live workers and the waiting jobs; countries whose jobs
  nobody takes are marked (thugrq.fleet).

Everything shown comes from Redis, which anyone who can write to it controls: every value is
text that Jinja escapes (templates never mark data safe), the SVG's labels included, and only
http(s) URLs ever become links. rq-dashboard's own job page gets one link here.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Blueprint, Response, current_app, render_template, request, url_for
from markupsafe import Markup
from rq import Worker
from rq.serializers import JSONSerializer

from thugrq import config, fleet, groups, job as jobs
from thugrq.compare import Difference
from thugrq.config import GENERIC_QUEUE
from thugrq.exceptions import ConfigError, UnknownJob
from thugrq.job import Outcome
from thugrq.queue import ThugrqQueue
from thugrq.results import analysed_from

blueprint = Blueprint(
    "thugrq", __name__, url_prefix="/thugrq", template_folder="templates", static_folder="static"
)

#: Seconds between two loads of a page that waits for jobs to end.
REFRESH_SECONDS = 5
#: The only URLs shown as links; any other (javascript:, data:, ...) is shown as text.
LINKED_SCHEMES = ("http://", "https://")
#: The redirect graph's geometry: boxes stacked top to bottom, an arrow between two.
BOX_WIDTH, BOX_HEIGHT, GAP, MARGIN = 760, 34, 34, 8
#: Characters of a URL written in its box (all of it in the box's tooltip).
LABEL_CHARS = 92
#: Where rq-dashboard's job page gets its link to the analysis page: before its data.
RQ_JOB_ANCHOR = '<div id="job-data"'


def connection() -> redis.Redis:
    """The dashboard's Redis, with thugrq's timeouts; one connection pool per app."""
    extensions = current_app.extensions
    if "thugrq.redis" not in extensions:
        url = current_app.config["RQ_DASHBOARD_REDIS_URL"]
        extensions["thugrq.redis"] = config.connect(url if isinstance(url, str) else url[0])
    return extensions["thugrq.redis"]


def linkable(url: Any) -> bool:
    """Whether a URL may be a link's href: http(s) only, by its literal beginning."""
    return isinstance(url, str) and url.lower().startswith(LINKED_SCHEMES)


@blueprint.context_processor
def helpers() -> dict[str, Any]:
    return {"linkable": linkable}


def missing(message: str) -> tuple[str, int]:
    return render_template("thugrq/missing.html", message=message), 404


@blueprint.errorhandler(ConfigError)
def unreachable(error: ConfigError) -> tuple[str, int]:
    return render_template("thugrq/missing.html", message=str(error), title="Redis"), 503


# --- one analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hop:
    """One page of the redirect chain as drawn: its box, and the arrow that led to it."""

    url: str
    label: str
    via: str | None
    y: int
    #: The arrow from the previous box (None for the first): its top and bottom y.
    arrow: tuple[int, int] | None


@dataclass(frozen=True)
class Graph:
    hops: list[Hop]
    width: int
    height: int
    box_width: int = BOX_WIDTH
    box_height: int = BOX_HEIGHT
    margin: int = MARGIN


def redirect_graph(chain: Iterable[Any]) -> Graph:
    """The redirect chain laid out as boxes top to bottom; labels stay data, which the template
    escapes."""
    hops: list[Hop] = []
    for index, hop in enumerate(entry for entry in chain if isinstance(entry, dict)):
        url = str(hop.get("url"))
        y = MARGIN + index * (BOX_HEIGHT + GAP)
        label = url if len(url) <= LABEL_CHARS else url[: LABEL_CHARS - 1] + "\u2026"
        arrow = (y - GAP, y - 2) if index else None
        via = hop.get("via")
        hops.append(Hop(url, label, str(via) if via and index else None, y, arrow))
    height = 2 * MARGIN + len(hops) * BOX_HEIGHT + max(len(hops) - 1, 0) * GAP
    return Graph(hops, BOX_WIDTH + 2 * MARGIN, height)


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dicts of a list read from a result document (anything else in it is left out)."""
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def analysis_view(document: dict[str, Any]) -> dict[str, Any]:
    """What the analysis page shows of a result document, each part of the expected shape
    whatever the document holds."""
    summary, worker, log = (mapping(document.get(key)) for key in ("summary", "worker", "log"))
    location = mapping(worker.get("location"))
    return {
        "status": document.get("status"),
        "error": document.get("error"),
        "url": document.get("url"),
        "final_url": summary.get("final_url"),
        "personality": mapping(document.get("options")).get("useragent"),
        "started": document.get("started"),
        "duration": document.get("duration"),
        "worker": worker.get("name"),
        "country": analysed_from(document),
        "verified": bool(location),
        "asn": location.get("asn") if location else worker.get("asn"),
        "as_name": location.get("as_name"),
        "address": location.get("address"),
        "checked": location.get("checked"),
        "thug": mapping(document.get("thug")),
        **{key: dicts(summary.get(key)) for key in (
            "exploits", "classifiers", "samples", "locations", "refused", "blocked_writes",
            "limited", "dns")},
        "counts": mapping(summary.get("counts")),
        "truncated": mapping(document.get("truncated")),
        "graph": redirect_graph(dicts(summary.get("redirect_chain"))),
        "markup": [entry for entry in dicts(log.get("locations")) if entry.get("content")],
        "snippets": dicts(log.get("code")),
    }


@blueprint.route("/job/<job_id>")
def job(job_id: str) -> Any:
    try:
        state, document = jobs.result(connection(), job_id)
    except UnknownJob as error:
        return missing(f"{error}. Nothing to show for this id.")
    except (redis.RedisError, ConfigError):
        raise
    except Exception:  # noqa: BLE001 - a finished job whose hash or result cannot be read
        state = dataclasses.replace(jobs.state(connection(), job_id),
                                    reason="its result cannot be read")
        document = None
    if document is None:
        return render_template(
            "thugrq/job.html", state=state, view=None, refresh=not state.final,
            refresh_seconds=REFRESH_SECONDS,
        )
    if not isinstance(document, dict):
        document = {"status": "unreadable", "error": "the job's result is not a result document",
                    "result": document}
    raw = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    return render_template(
        "thugrq/job.html", state=state, view=analysis_view(document), raw=raw, refresh=False
    )


# --- a group --------------------------------------------------------------------------------


def odd_ones(differences: Iterable[Difference]) -> dict[str, dict[str, list[str]]]:
    """URL -> who saw something else than the rest of the URL's analyses -> in which aspects.

    In each difference, those who saw what most saw are the rest; with no such majority (two
    analyses, two answers) every one of them is marked."""
    odd: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for difference in differences:
        sizes = [len(who) for who in difference.seen.values()]
        majority = max(sizes)
        unique = sizes.count(majority) == 1
        for who in difference.seen.values():
            if not (unique and len(who) == majority):
                for name in who:
                    odd[difference.url][name].append(difference.title)
    return odd


@dataclass
class Cell:
    """The jobs of one URL in one column, each with the aspects in which it differs."""

    jobs: list[tuple[Outcome, list[str]]] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return any(aspects for _, aspects in self.jobs)


Column = tuple[str | None, str | None]


@dataclass
class Matrix:
    """The jobs of one page of a group, URL x (queue, personality)."""

    columns: list[Column]
    rows: dict[str, dict[Column, Cell]]


def matrix(listed: list[Outcome], differences: list[Difference]) -> Matrix:
    """The matrix of `listed`, each job marked with where `differences` (the group's comparison)
    sets it apart from the rest of its URL's analyses."""
    odd = odd_ones(differences)
    columns = sorted({(o.queue, o.useragent) for o in listed}, key=lambda c: (str(c[0]), str(c[1])))
    rows: dict[str, dict[Column, Cell]] = {}
    for outcome in listed:
        url = outcome.url or ""
        aspects = odd.get(url, {}).get(outcome.seen_by, [])
        cells = rows.setdefault(url, {})
        cells.setdefault((outcome.queue, outcome.useragent), Cell()).jobs.append((outcome, aspects))
    return Matrix(columns, dict(sorted(rows.items())))


@blueprint.route("/group/<group_id>")
def group(group_id: str) -> Any:
    offset = request.args.get("offset", "0")
    offset = int(offset) if offset.isdigit() else 0
    try:
        report = groups.report(connection(), group_id, offset, groups.DEFAULT_LIMIT,
                               groups.COMPARE_LIMIT)
    except UnknownJob as error:
        return missing(f"{error}. Nothing to show for this id.")
    return render_template(
        "thugrq/group.html", report=report, counts=report.counts,
        matrix=matrix(report.listed, report.compared.differences),
        refresh=report.counts.remaining > 0, refresh_seconds=REFRESH_SECONDS,
    )


# --- the fleet ------------------------------------------------------------------------------


def current_jobs(connection: redis.Redis, names: list[str]) -> dict[str, str | None]:
    """The job each named RQ worker is busy with (RQ's own record of its execution), else
    None; None too for a worker RQ cannot read."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name,
                                        connection=connection, serializer=JSONSerializer)
            found[name] = worker.get_current_job_id() if worker else None
        except redis.ConnectionError:
            raise
        except Exception:  # noqa: BLE001 - a worker hash someone hostile wrote: no current job
            found[name] = None
    return found


@blueprint.route("/fleet")
def fleet_page() -> Any:
    redis_connection = connection()
    records = fleet.workers(redis_connection)
    rows = [(row, [r for r in records if row.country in r.queues])
            for row in fleet.countries(redis_connection)]
    nowhere = [record for record in records if not record.country]
    return render_template(
        "thugrq/fleet.html", rows=rows, nowhere=nowhere, workers=records,
        current=current_jobs(redis_connection, [record.name for record in records]),
        generic=ThugrqQueue(GENERIC_QUEUE, connection=redis_connection).count,
    )


# --- rq-dashboard's job page ----------------------------------------------------------------


@blueprint.after_app_request
def link_from_rq_dashboard(response: Response) -> Response:
    """rq-dashboard's page of a job gets one link to the job's analysis page (no script: the
    page's policy stays as it is)."""
    if (request.endpoint != "rq_dashboard.job_view" or response.mimetype != "text/html"
            or response.direct_passthrough or response.status_code != 200):
        return response
    page = response.get_data(as_text=True)
    if RQ_JOB_ANCHOR not in page:
        return response
    link = Markup('<p class="thugrq-link"><a href="{}">thugrq\'s analysis page of this job</a></p>')
    target = url_for("thugrq.job", job_id=(request.view_args or {}).get("job_id", ""))
    response.set_data(page.replace(RQ_JOB_ANCHOR, str(link.format(target)) + RQ_JOB_ANCHOR, 1))
    return response
