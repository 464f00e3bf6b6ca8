"""The numbers a deployment might tune, and the bounds both sides of a queue enforce.

One home for each, so that what a submitter may ask (thugrq.submit, thugrq.options, the CLI)
and what a worker accepts (thugrq.jobhash) come from the same definition and cannot drift: a
job the library writes is never one that every worker then refuses.
"""

from __future__ import annotations

MIB = 1024 * 1024

# What a submitter may ask of a job.

#: Results (and failures) stay in Redis for 30 days unless the submitter says otherwise.
RESULT_TTL = 30 * 24 * 3600
#: A job's result and failure TTL: a TTL of 0 would make its outcome vanish at once.
MIN_RESULT_TTL = 60
MAX_RESULT_TTL = 10**8
#: Thug's own analysis timeout when the submitter gives none (seconds), and the most allowed.
DEFAULT_ANALYSIS_TIMEOUT = 300
MAX_ANALYSIS_TIMEOUT = 3600
#: RQ's job timeout is the analysis timeout plus this margin: both use SIGALRM, and Thug's
#: watchdog must fire first so a slow page ends as a `timeout` result, not a killed horse.
JOB_TIMEOUT_MARGIN = 60
#: A job may not run forever.
MAX_JOB_TIMEOUT = 10**7
#: How many times a job whose work horse crashed, or whose worker died, runs again.
DEFAULT_RETRIES = 2
MAX_RETRIES = 5
#: Backoff (seconds) before each retry of a job whose work horse crashed or whose worker died.
RETRY_INTERVALS = [5, 15]
#: The longest --dedupe window: no job outlives its result TTL.
MAX_DEDUPE = MAX_RESULT_TTL
#: Largest job data (decompressed JSON) a worker reads: a URL and options are far smaller.
MAX_JOB_DATA = 64 * 1024
#: Largest text field of a job hash (its description, a refusal) a worker reads, in bytes.
MAX_JOB_TEXT = 16 * 1024
#: Largest response body and total download a submitter may allow one analysis (the horse's
#: memory limit, worker --max-memory, must hold them and what Thug makes of them).
MAX_RESPONSE_BYTES = 64 * MIB
MAX_DOWNLOAD_BYTES = 256 * MIB

# What a worker keeps to.

#: The largest result document a worker stores, in bytes as Redis holds it (RQ keeps a result
#: as base64 of its JSON), unless `thugrq-worker --max-result-bytes` or its variable says.
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
#: The smallest bound a worker accepts: room for what a result always keeps whole (URL,
#: options, error, final URL) and the beginning of each summary list, whatever the page did.
MIN_MAX_RESULT_BYTES = 512 * 1024
#: Default address-space limit of a horse, MiB: a horse starts at about 0.9 GiB (V8 reserves
#: much of it) and a plain analysis peaks near 1.2 GiB.
DEFAULT_MAX_MEMORY = 2048
#: How long `thugrq down` lets a busy local worker finish its analysis before stopping it.
STOP_GRACE = 10.0

# RQ's intervals, tuned so that a job whose worker host died runs again within a minute
# (RQ's defaults take 10 to 14 minutes). The timeline of such a job: its heartbeat expires at
# most JOB_MONITORING_INTERVAL + HEARTBEAT_GRACE s after the death (15 s); an idle worker
# wakes from its blocking dequeue every WORKER_TTL - 15 s (15 s) and cleans the registries
# when MAINTENANCE_INTERVAL s (10 s) have passed, which puts the abandoned job back through
# RQ's retry (first backoff: RETRY_INTERVALS[0] s). Worst case about 50 s.

#: Seconds between the worker's checks on a running horse; each renews the job's heartbeat.
JOB_MONITORING_INTERVAL = 5
#: A running job whose heartbeat is older than this many seconds past the interval is abandoned.
HEARTBEAT_GRACE = 10
#: The worker's own TTL in Redis; its blocking dequeue waits WORKER_TTL - 15 s at most.
WORKER_TTL = 30
#: How often (seconds) a worker cleans the registries, re-queueing abandoned jobs.
MAINTENANCE_INTERVAL = 10
#: How long a worker's fleet record (`thugrq workers`) outlives its last heartbeat: longer than
#: an idle worker's longest wait (WORKER_TTL - 15 s) plus a failing location lookup, short
#: enough that a lost host leaves the list within a minute (RQ's own record takes 65 to 90 s).
FLEET_RECORD_TTL = 45
#: Longest wait between reconnection attempts while Redis is away (RQ: 60).
MAX_CONNECTION_WAIT = 5
#: How long a Redis command's answer may take before its connection counts as lost: redis-py
#: 8's default (redis-py 7 waited for ever), said here so that it stays thugrq's.
SOCKET_TIMEOUT = 5
#: What a connection for blocking reads waits on top of their block (thugrq.config.blocking);
#: RQ's worker allows its dequeue as much.
BLOCKING_MARGIN = 10
