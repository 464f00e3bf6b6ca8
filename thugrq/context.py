"""What an analysis takes from whoever runs it, rather than from its job: `AnalysisContext`.

A worker builds one at start-up and hands it to every analysis it runs (thugrq.analysis says
how); tests, scripts and bench/bare.py build their own, and `AnalysisContext()` is the
environment's. Frozen, so that nothing one analysis does can change what the next is told.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thugrq import config
from thugrq.proxy import Proxy
from thugrq.samples import Store
from thugrq.targets import Policy


@dataclass(frozen=True)
class Whereabouts:
    """Where the worker's last location check placed it, and when (UTC, ISO 8601): what a
    result says it was analysed from. All but `checked` are None when that check failed."""

    address: str | None
    country: str | None
    asn: int | None
    as_name: str | None
    checked: str


@dataclass(frozen=True)
class Identity:
    """Who runs an analysis, as the result document's `worker` records it; `location` is None
    when the worker was told its country (or queues) rather than finding it."""

    name: str | None = None
    country: str | None = None
    asn: int | None = None
    location: Whereabouts | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AnalysisContext:
    """The worker's side of an analysis. Each field left out is the environment's: no identity,
    the private-target policy of THUGRQ_ALLOW_PRIVATE_TARGETS (all refused when unset), the
    result bound of THUGRQ_MAX_RESULT_BYTES (else 1 MiB)."""

    identity: Identity = field(default_factory=Identity)
    #: Which non-public addresses the analysis may reach (thugrq.targets).
    policy: Policy = field(default_factory=Policy.from_environment)
    #: The bound on the stored result document, in bytes (thugrq.results).
    max_result_bytes: int = field(default_factory=config.max_result_bytes)
    #: The proxy every fetch goes through (thugrq.proxy), or None: straight from this host.
    proxy: Proxy | None = None
    #: Records the result of an analysis stuck in JavaScript past its deadline and ends the
    #: process (thugrq.deadline). A work horse has one for its job; without it such an analysis
    #: runs until its job is killed.
    on_overrun: Callable[[dict[str, Any]], None] | None = None
    #: Where the files the analysis downloads are kept (thugrq.samples), or None: they are only
    #: hashed. A worker gives each horse its store, with the job's result TTL.
    samples: Store | None = None

    def for_job(
        self,
        identity: Identity,
        on_overrun: Callable[[dict[str, Any]], None] | None,
        result_ttl: int | None,
    ) -> AnalysisContext:
        """This context for one job, in its horse: who runs it as it starts, how to record its
        overrun, and its samples kept as long as its result (`result_ttl` seconds)."""
        samples = self.samples.for_job(result_ttl) if self.samples else None
        return dataclasses.replace(self, identity=identity, on_overrun=on_overrun, samples=samples)
