"""Transient I/O errors and the retry policy shared by extraction, checksums and sources.

A FUSE or network mount hiccups (EIO, EREMOTEIO, ...): such errors are retried, with backoff.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "ATTEMPTS",
    "BACKOFF_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "TRANSIENT_ERRNOS",
    "is_transient",
    "retrying",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Errors a FUSE/network mount gives while the server hiccups; worth another try.
TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ESTALE, errno.ECONNRESET}
)
ATTEMPTS = 4
BACKOFF_SECONDS = 0.1  # the first retry's wait; it doubles at each further attempt
MAX_BACKOFF_SECONDS = 2.0


def is_transient(exc: BaseException) -> bool:
    """True for OSErrors a retry may cure."""
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def retrying():
    """Tenacity policy shared by extraction and checksums: bounded, exponential backoff.

    The decorated function gets its tenacity wrapper at its first call: a pass that reads
    nothing (most passes) need not import tenacity.
    """

    def decorate(fn: Callable[..., _T]) -> Callable[..., _T]:
        wrapped: Callable[..., _T] | None = None

        @functools.wraps(fn)
        def call(*args, **kwargs) -> _T:
            nonlocal wrapped
            if wrapped is None:  # two threads may both build one: harmless, they are alike
                wrapped = _policy()(fn)
            return wrapped(*args, **kwargs)

        return call

    return decorate


def _policy():
    from tenacity import retry, retry_if_exception, stop_after_attempt

    def wait(state) -> float:  # read at each wait, so tests can set BACKOFF_SECONDS to 0
        return min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** (state.attempt_number - 1))

    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait,
        reraise=True,
        before_sleep=lambda state: log.info(
            "retrying after %s (attempt %d)", state.outcome.exception(), state.attempt_number
        ),
    )
