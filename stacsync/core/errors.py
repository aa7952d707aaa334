"""Error classes shared by every stacsync module.

Per-file problems never travel through a pass as exceptions: they become manifest error rows.
"""


class StacsyncError(Exception):
    """Root of every error stacsync raises on purpose."""


class ConfigError(StacsyncError):
    """A configuration value is missing or wrong; the message names the key."""


class ManifestLockedError(StacsyncError):
    """Another process holds the manifest's writer lock."""


class OutputError(StacsyncError, OSError):
    """The output cannot be written (missing, read-only, not a folder)."""


class SourceUnavailableError(StacsyncError):
    """The source cannot be listed, or lists too few files to be trusted: nothing is written."""


class ExtractError(StacsyncError):
    """A file cannot be described; the message is meant for a person and names the file."""
