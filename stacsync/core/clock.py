"""Timestamps for people: the manifest's UTC times, to the second.

Standard library `time` only: a no-change rescan records its pass without importing datetime.
"""

from __future__ import annotations

import time


def now_iso() -> str:
    """Current UTC time, second precision, for human-facing columns (2026-01-31T12:00:00Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
