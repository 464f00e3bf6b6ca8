"""The errors thugrq's modules raise to one another, and that scripts using the API catch.

They live apart from the code raising them so that a caller can name them without importing
that code (the CLI and the worker catch what submit, config and geo raise). Errors that never
leave their module, such as the analysis deadline, stay where they are used.
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """Input refused before any work is done; the message says what to fix."""


class ConfigError(Exception):
    """A setting is unusable; the message says what to fix."""


class UnknownJob(LookupError):
    """No such job in Redis (never enqueued, or expired)."""


class RefusedJob(Exception):
    """A job that a thugrq worker will not run."""


class GeoError(Exception):
    """A step of the lookup failed; `step` says which, the message says why."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
