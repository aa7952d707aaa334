"""The `Output` protocol: where a pass publishes catalog files, and how it opens them to all.

A pass sees only this; `local.LocalOutput` and `irods.IrodsOutput` implement it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from stacsync.config.settings import Settings


class Output(Protocol):
    """A place catalog files are published to, addressed by POSIX paths under its root."""

    def check_writable(self) -> None:
        """Create the root if needed; OutputError naming what to fix when it cannot be used.
        Called once at the start of every pass."""
        ...

    def make_public(self, settings: Settings) -> None:
        """Give the public read access to the root (and to files written later), as `settings`
        ask; look before setting anything. A no-op where the store has no access control."""
        ...

    def sweep_temp_files(self) -> None:
        """Remove temp files a crash left between write and rename (never seen by readers)."""
        ...

    def exists(self, relpath: str) -> bool: ...

    def write(self, relpath: str, data: bytes) -> None:
        """Replace `relpath` with `data`: readers see the old file or the new, never half."""
        ...

    def open_atomic(self, relpath: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A file that appears as `relpath` only once the block ends cleanly."""
        ...

    def delete(self, relpath: str) -> None:
        """Remove a file (nothing if it is gone) and the folders it leaves empty."""
        ...

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Writes in the block are durable once it ends cleanly (not necessarily each on its
        own): the manifest records them only after. A no-op where every write is durable."""
        ...
