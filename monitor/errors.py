"""One exception root for the whole daemon, with subclasses by domain.

Messages say what was wrong, where, and what to do about it; callers chain the
original error with ``raise ... from err``.
"""

from __future__ import annotations

from collections.abc import Sequence


class MonitorError(Exception):
    """Root of every error monitor raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code = 1


class ConfigError(MonitorError):
    """The configuration file (or an environment override) is invalid.

    Carries one line per problem, each shaped ``FILE: key.path: what is wrong``.
    """

    exit_code = 2

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DatabaseError(MonitorError):
    """The database cannot be reached or used."""


class SchemaNotCurrentError(DatabaseError):
    """The database schema is not at the revision this code needs."""

    exit_code = 3

    def __init__(self, url: str, current: str | None, head: str):
        self.url, self.current, self.head = url, current, head
        where = current or "empty (no tables)"
        super().__init__(
            f"database {url} is at revision {where}, this version of monitor needs {head}: "
            "run `monitor db upgrade` (with the same --config) first"
        )


class ModelError(MonitorError):
    """A model cannot be loaded or called the way the configuration says."""


class AttributionError(MonitorError):
    """Feature attributions cannot be computed for the given model and inputs."""


class DriftError(MonitorError):
    """Drift cannot be computed for the given reference and window."""


class IntakeError(MonitorError):
    """Predictions cannot be read from a source (not a bad row: those are quarantined)."""


class RunError(MonitorError):
    """A monitoring run failed; the run is recorded as failed with this message."""


class NoBaselineError(RunError):
    """A run was asked for a model that has no baseline yet: a usage error, nothing stored."""

    exit_code = 2


class SlackError(MonitorError):
    """Slack cannot be reached or refused a call."""


class NotFoundError(MonitorError):
    """Something asked for by id or name does not exist."""

    exit_code = 4
