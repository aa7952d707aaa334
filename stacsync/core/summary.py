"""What one pass did: the record the pipeline fills and the CLI, daemon and keeper read.

Its fields are the `rescan --json` output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PassSummary:
    """What one pass did; `to_dict()` is the `--json` output."""

    added: int = 0
    modified: int = 0
    touched: int = 0
    removed: int = 0
    unchanged: int = 0
    deferred: int = 0
    unmatched: int = 0
    errors: int = 0  # files in error after this pass
    new_errors: int = 0  # files that went into error during this pass
    render_errors: int = 0  # items that could not be rendered (logged; retried next pass)
    items_written: int = 0
    items_deleted: int = 0
    collections_written: int = 0
    catalog_written: bool = False
    index_written: bool = False
    files_without_rows: int = 0
    table_rows_without_files: dict[str, list[str]] = field(default_factory=dict)
    listing_problems: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0

    def log_line(self) -> str:
        """The pass in one log line."""
        return (
            f"pass: {self.added} added, {self.modified} modified, {self.touched} touched,"
            f" {self.removed} removed, {self.unchanged} unchanged, {self.deferred} deferred,"
            f" {self.errors} errors; {self.items_written} items written,"
            f" {self.items_deleted} deleted, {self.collections_written} collections written"
            f" in {self.seconds:.2f}s"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
