"""What the daemon writes to its log: one line per pass, and systemd journal formatting.

`JournalFormatter` and `stderr_is_journal` are used by the CLI when it configures logging.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from stacsync.core.summary import PassSummary


def changed(s: PassSummary) -> bool:
    counts = (s.added, s.modified, s.touched, s.removed, s.new_errors)
    return any(counts) or bool(s.items_written or s.items_deleted or s.listing_problems)


def pass_line(reason: str, scope: str, s: PassSummary, waiting: int) -> str:
    line = (
        f"{reason} pass ({scope}): {s.added} added, {s.modified} modified, {s.touched} touched,"
        f" {s.removed} removed, {s.unchanged} unchanged, {s.errors} errors ({s.new_errors} new);"
        f" {s.items_written} items written, {s.items_deleted} deleted in {s.seconds:.2f}s"
    )
    if waiting:
        line += f"; {waiting} waiting to settle"
    if s.listing_problems:
        line += f"; {len(s.listing_problems)} listing problems, first: {s.listing_problems[0]}"
    return line


# -- logging helpers for the CLI -------------------------------------------------------------

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """`<priority>name: message` lines: journald reads the priority and adds its own time."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is systemd's journal stream (JOURNAL_STREAM names its device:inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)
