"""What every stacsync command shares: exit codes, error handling, logging, progress, summaries.

Library errors become one line on stderr and a documented exit code here, and only here.
"""

from __future__ import annotations

import functools
import logging
import sys

import click

from stacsync.core.errors import ConfigError, ManifestLockedError, OutputError, StacsyncError

log = logging.getLogger("stacsync")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_OUTPUT = 4


class Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def library_errors(fn):
    """Turn StacsyncError into a one-line message with a documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise Failure(f"config: {exc}", EXIT_CONFIG) from exc
        except ManifestLockedError as exc:
            raise Failure(str(exc), EXIT_LOCKED) from exc
        except OutputError as exc:
            raise Failure(str(exc), EXIT_OUTPUT) from exc
        except StacsyncError as exc:
            raise Failure(str(exc), EXIT_FAILED) from exc

    return wrapper


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose > 1:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class Progress:
    """A one-line progress display on stderr, only used on a terminal."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        line = f"\r{phase:8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            sys.stderr.write("\r" + " " * len(self._last) + "\r")
            sys.stderr.flush()


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
