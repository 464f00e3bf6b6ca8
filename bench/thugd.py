"""A replica of the seed's ThugD design, the peer that bench/peers.py measures thugrq against.

A Celery 5 worker over RabbitMQ, acks late, prefetch multiplier 2, a Redis result backend, the
prefork pool with no max-tasks-per-child: each pool process is forked once and then runs task
after task. The task runs Thug's API inside that reused process: per task a ThugAPI subclass,
`set_json_logging`, `log_init`, `run_remote`, `log_event`, and Thug's JSON log returned as the
task's result (the benchmark summarises it with thugrq.results.summarize and checks its facts).
Thug is imported once by the worker's main process, before the pool forks, as a daemon that
imports Thug at start-up does.

bench/peers.py starts it as

    python -m celery -A thugd worker -Q thugd -P prefork -c N -n NAME -l WARNING

with bench/ on PYTHONPATH and the settings in the environment:

- THUGD_BROKER: the AMQP URL (a RabbitMQ vhost that the benchmark creates for the run);
- THUGD_BACKEND: the Redis URL of the result backend (a database of the benchmark's Redis);
- THUGD_READY: a file the worker writes its pid to once it is ready to take tasks.

This module needs PyPI's `celery` (`pip install -e '.[bench]'`); thugrq and its tests never
import it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import Celery, signals

#: The queue the replica's tasks go to, and the task's name.
QUEUE = "thugd"
TASK = "thugd.analyze"


def settings(broker: str, backend: str) -> dict[str, Any]:
    """The ThugD design's Celery settings: the worker's and the client's alike."""
    return {
        "broker_url": broker,
        "result_backend": backend,
        "task_acks_late": True,
        "worker_prefetch_multiplier": 2,
        "worker_max_tasks_per_child": None,  # pool processes are reused for ever
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "broker_connection_retry_on_startup": True,
    }


app = Celery("thugd", set_as_current=False)
if "THUGD_BROKER" in os.environ:  # the worker; a client configures its own app (bench/peers.py)
    app.conf.update(settings(os.environ["THUGD_BROKER"], os.environ["THUGD_BACKEND"]))


@signals.worker_init.connect
def _import_thug(**_: Any) -> None:
    """Thug imported in the worker's main process, before the pool processes are forked."""
    import thug.ThugAPI  # noqa: F401 - the import is the point


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    ready = os.environ.get("THUGD_READY")
    if ready:
        Path(ready).write_text(str(os.getpid()))


@app.task(name=TASK)
def analyze(url: str) -> dict[str, Any]:
    """Thug on `url` inside this pool process: Thug's JSON log, the process's pid and the
    seconds the task took inside it."""
    started = time.perf_counter()
    from thug.ThugAPI import ThugAPI

    from thugrq.options import Options

    class Analysis(ThugAPI):
        def analyze(self) -> None:  # required by ThugAPI; driven step by step below
            raise NotImplementedError

    thug = Analysis()
    Options().apply(thug)  # thugrq's defaults (personality, timeout, logging): the same analysis
    thug.set_json_logging()
    thug.log_init(url)
    thug.run_remote(url)
    thug.log_event()
    thug_logging = getattr(logging.getLogger("Thug"), "ThugLogging", None)
    module = getattr(thug_logging, "modules", {}).get("json") if thug_logging else None
    return {
        "pid": os.getpid(),
        "seconds": time.perf_counter() - started,  # in the task, queue and results apart
        "log": getattr(module, "data", None),
    }
