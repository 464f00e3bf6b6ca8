"""The one function a thugrq worker runs: analyse a URL with Thug and return the result document.

It runs in the work horse that RQ forks for each job. Thug is imported and warmed up by the
worker before its first job (thugrq.warm), so each horse inherits it ready; everything Thug
sets up per analysis lives and dies with the horse.

What the analysis takes from the worker (who runs it, the targets it may reach, the bound on its
result, how to record an overrun, where to keep the files it downloads) is an explicit
argument, `context` (thugrq.context), never module state: the job stays `analyze(url,
options)` in Redis, and the worker binds its context when the job resolves its function
(thugrq.job.ThugrqJob.func, set in the horse by thugrq.worker.ThugrqWorker.perform_job).
A parameter rather than a ContextVar or a module global: what an analysis depends on shows in
its signature, nothing is set at a distance, and a test's or a script's context is just an
argument. Left out, it is the environment's (`AnalysisContext()`), so that a script can call
`analyze(url, options)` as it is.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from types import FrameType, ModuleType
from typing import Any

from thugrq import classifiers, results, samples, truncation
from thugrq.context import AnalysisContext
from thugrq.deadline import Deadline
from thugrq.limits import MEMORY_REASON, Downloads, limited_downloads
from thugrq.resolutions import Resolutions
from thugrq.sandbox import confine
from thugrq.targets import Guard, url_refusal
from thugrq.truncation import SUMMARY_ITEMS
from thugrq.options import Options, check_url
from thugrq.proxy import UNREACHABLE, Proxy

#: The dotted name of `analyze` that newly submitted jobs carry.
ANALYZE = "thugrq.analysis.analyze"
#: Every name a worker runs as `analyze`: ANALYZE, and its name in jobs queued before this
#: module was thugrq.analysis (it was thugrq.jobs). Any other job function is refused.
JOB_FUNCTIONS = (ANALYZE, "thugrq.jobs.analyze")
#: Environment variables through which requests would pick another proxy, or none.
PROXY_VARIABLES = tuple(
    name for base in ("all_proxy", "http_proxy", "https_proxy", "no_proxy") for name in (base, base.upper())
)


class AnalysisTimeout(BaseException):
    """Thug's watchdog fired. A BaseException, so Thug's broad `except Exception` can't eat it."""


def load_thug() -> ModuleType:
    """Import Thug (and its JS engine) once, so forked horses start with it loaded."""
    import thug
    import thug.ThugAPI  # noqa: F401 - the import is the point

    return thug


def thug_versions() -> dict[str, str]:
    thug = load_thug()
    return {
        "version": thug.__version__,
        "jsengine": thug.__jsengine__,
        "jsengine_version": thug.__jsengine_version__,
    }


def analyze(
    url: str, options: dict[str, Any], *, context: AnalysisContext | None = None
) -> dict[str, Any]:
    """Analyse `url` with Thug under `options`; return the result document (results.SCHEMA).

    `url` and `options` come out of Redis, so they are validated again here; `context` comes
    from the worker (default: the environment's, see above). Thug runs in a scratch
    directory of its own (its working directory, THUG_LOGBASE and TMPDIR) that is removed
    afterwards; it may not write anywhere else (thugrq.sandbox) nor connect to addresses the
    context's policy refuses (thugrq.targets).
    The analysis ends as `timeout` at `options.timeout` seconds, plus deadline.GRACE when
    JavaScript never yields (then the context's `on_overrun` delivers the result; see
    thugrq.deadline).
    """
    context = context or AnalysisContext()
    url = check_url(url)
    checked = Options.from_dict(options)
    started = _now()
    previous_cwd = os.getcwd()
    timed_out = f"analysis exceeded {checked.timeout} s"
    refused, blocked = truncation.Capped(), truncation.Capped()  # a page may add to them without end
    downloads = Downloads(checked.max_response_bytes, checked.max_download_bytes)
    guard = Guard(context.policy, refused, context.proxy)
    lookups = Resolutions(context.proxy)

    def document(status: str, error: str | None, log: dict[str, Any] | None) -> dict[str, Any]:
        return results.build(
            url=url,
            options=checked.to_dict(),
            worker=context.identity.to_dict(),
            thug=thug_versions(),
            started=started,
            ended=_now(),
            status=status,
            error=error,
            log=log,
            refused=refused,
            blocked_writes=blocked,
            limited=downloads.limited,
            dns=lookups.answers(log),
            samples=samples.summaries(
                (log or {}).get("files") or [], context.samples, SUMMARY_ITEMS
            ),
            max_bytes=context.max_result_bytes,
        )

    def overrun() -> None:
        # Called from the deadline thread while the main thread is stuck in JavaScript.
        guard.trust()  # this thread must reach Redis to record the result; the page may not
        shutil.rmtree(scratch, ignore_errors=True)
        assert context.on_overrun is not None
        context.on_overrun(
            document(results.STATUS_TIMEOUT, timed_out + " (JavaScript never yielded)", _snapshot())
        )

    refusal = url_refusal(url, context.policy, resolve=not (context.proxy and context.proxy.remote_dns))
    if context.proxy and checked.proxy:
        refusal = (
            "the job asks for a proxy of its own, but this worker fetches only through its own "
            "(its country is that proxy's exit's): submit it without --proxy"
        )
    if refusal:
        return document(results.STATUS_REFUSED, refusal, None)
    scratch = tempfile.mkdtemp(prefix="thugrq-")
    try:
        os.chdir(scratch)
        os.environ["THUG_LOGBASE"] = scratch
        with (
            confine(scratch, blocked),
            guard,
            lookups,
            Deadline(checked.timeout, AnalysisTimeout, overrun if context.on_overrun else None),
        ):
            log = _run_thug(url, checked, scratch, downloads, context.proxy)
        failure = _proxy_failure(context.proxy)
        return document(results.STATUS_ERROR if failure else results.STATUS_COMPLETED, failure, log)
    except AnalysisTimeout:
        return document(results.STATUS_TIMEOUT, timed_out, _thug_json_log())
    except MemoryError as exc:  # the horse's address-space limit (thugrq.limits); no log:
        # copying it is what might fail next
        return document(results.STATUS_ERROR, f"{MEMORY_REASON}: {type(exc).__name__} {exc}", None)
    except Exception as exc:  # noqa: BLE001 - any Thug failure becomes a visible result
        error = _proxy_failure(context.proxy) or f"{type(exc).__name__}: {exc}"
        return document(results.STATUS_ERROR, error, _thug_json_log())
    finally:
        os.chdir(previous_cwd)
        shutil.rmtree(scratch, ignore_errors=True)


def _run_thug(
    url: str, options: Options, scratch: str, downloads: Downloads, proxy: Proxy | None
) -> dict[str, Any] | None:
    from thug.ThugAPI import ThugAPI

    class Analysis(ThugAPI):
        def analyze(self) -> None:  # required by ThugAPI; we drive it step by step
            raise NotImplementedError

        def _ThugAPI__init_classifiers(self) -> None:  # Thug's compiles every rule anew
            classifiers.install(self)

        def watchdog_cb(self, signum: int, frame: FrameType | None) -> None:
            # Thug's watchdog would log and then SIGTERM the whole process; end the analysis
            # here instead, so the horse survives to return a `timeout` result.
            raise AnalysisTimeout

    thug = Analysis()
    options.apply(thug)
    thug.set_json_logging()
    thug.log_init(url)
    thug.set_log_dir(scratch)
    if proxy:
        thug.set_proxy(proxy.url)  # Thug checks that it answers before the first fetch
    with limited_downloads(downloads), _every_session_through(proxy):
        thug.run_remote(url)
    thug.log_event()
    return _thug_json_log()


@contextmanager
def _every_session_through(proxy: Proxy | None) -> Iterator[None]:
    """Send every requests session of the analysis through `proxy`: Thug gives its proxy to
    its main session only, and its async prefetcher would fetch from this host (the guard
    would refuse it). Requests reads the proxy of every session from the environment."""
    if proxy is None:
        yield
        return
    saved = {name: os.environ.pop(name, None) for name in PROXY_VARIABLES}
    os.environ["all_proxy"] = proxy.url
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def _proxy_failure(proxy: Proxy | None) -> str | None:
    """Why an analysis through `proxy` does not stand, or None: when the proxy stopped
    answering, what the page fetched through it is partial, and nothing came from elsewhere
    (the guard sees to that)."""
    reason = proxy.probe() if proxy else None
    return f"{UNREACHABLE}: {proxy} ({reason})" if reason else None


def _thug_json_log() -> dict[str, Any] | None:
    """Thug's JSON log, straight from memory (never from files)."""
    thug_logging = getattr(logging.getLogger("Thug"), "ThugLogging", None)
    module = getattr(thug_logging, "modules", {}).get("json") if thug_logging else None
    return getattr(module, "data", None)


def _snapshot() -> dict[str, Any] | None:
    """A copy of Thug's JSON log taken from another thread, which may be changing it."""
    for _ in range(5):
        try:
            return copy.deepcopy(_thug_json_log())
        except RuntimeError:  # changed size during iteration: try again
            continue
    return None


def _now() -> datetime:
    return datetime.now(timezone.utc)
