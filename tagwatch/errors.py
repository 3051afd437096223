"""The errors tagwatch raises, and what each means for the user.

Every error carries a message fit to print on one line: it names what is wrong and where
(file and line, config key, reference or registry host) and never contains a secret.

Our exception hierarchy:

* TagwatchError
  + ConfigError          -- the configuration is wrong (exit status 2)
  + ReferenceError_      -- an image reference the grammar refuses (a ConfigError inside config)
  + RegistryError        -- a check against a registry failed (exit status 1)
    - AuthError          -- credentials refused, or no access to the repository
    - NotFound           -- the registry says the tag or digest does not exist
    - RateLimited        -- 429 Too Many Requests (carries retry_after)
    - RegistryUnavailable-- connection refused, timeout, reset, 5xx
    - BadResponse        -- a non-manifest answer: HTML, wrong type, digest mismatch, too big
  + StoreError           -- the database cannot be read or written
  + NotifyError          -- an alert could not be delivered
"""

from __future__ import annotations

import os
import traceback

__all__ = [
    "AuthError",
    "BadResponse",
    "ConfigError",
    "NotFound",
    "NotifyError",
    "RateLimited",
    "ReferenceError_",
    "RegistryError",
    "RegistryUnavailable",
    "SourceError",
    "StoreError",
    "TagwatchError",
    "describe_failure",
    "raised_at",
]


class TagwatchError(Exception):
    """Base class: str(error) is a one-line message for the user."""


class ConfigError(TagwatchError):
    """The configuration (file, key or value) is wrong."""


class ReferenceError_(TagwatchError):  # noqa: N801 - ReferenceError is a builtin
    """An image reference that the distribution reference grammar refuses."""


class RegistryError(TagwatchError):
    """A request to a registry failed; the message names the registry. `reason` is a short
    fixed word (used as a bounded metric label and in `status`)."""

    reason = "error"


class AuthError(RegistryError):
    reason = "auth"


class NotFound(RegistryError):
    reason = "not_found"


class RateLimited(RegistryError):
    reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryUnavailable(RegistryError):
    reason = "unavailable"


class BadResponse(RegistryError):
    reason = "bad_response"


class SourceError(TagwatchError):
    """A [[source]] could not be read: its engine or API server is down, refuses us, or
    answers nonsense. Never a reason to drop what it yielded before."""


class StoreError(TagwatchError):
    """The database cannot be opened, read or written."""


class NotifyError(TagwatchError):
    """An alert could not be delivered."""


# --- what was raised where no TagwatchError explains it (a bug, or a peer's document) ----


def describe_failure(exc: BaseException) -> str:
    """`RecursionError: maximum recursion depth exceeded …`: one line naming what a job
    raised, for a log line or a target's error (its text is cleaned where it is shown)."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - an exception whose str() fails still has a name
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def raised_at(exc: BaseException, depth: int = 4) -> str:
    """Where `exc` was raised: the innermost `depth` frames on one line, innermost first,
    each called from the next (`decoder.py:353 raw_decode < client.py:251 image_facts`);
    file, line and function only, never a value: for a debug log line a bug report quotes."""
    frames = traceback.extract_tb(exc.__traceback__, limit=-depth)
    return (
        " < ".join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))
        or "?"
    )
