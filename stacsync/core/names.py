"""File names as the store gives them: any bytes, kept losslessly, shown and linked safely.

Local names are `os.fsdecode`d (surrogate escapes for bytes that are not UTF-8); this module
is where such a name is turned into database values, messages and URLs.
"""

from __future__ import annotations

import os
from urllib.parse import quote

# GDAL builds sidecar names (`.aux.xml`, `.ovr`) in 2,048-byte buffers: a longer path fails
# with "Destination buffer too small", which blames the file. Such files are read through a
# Python stream instead; the margin leaves room for the longest suffix GDAL appends.
GDAL_MAX_PATH = 1900

_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F]}
_CONTROL.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def is_utf8(name: str) -> bool:
    """False when `name` holds surrogate escapes: bytes that are not UTF-8."""
    if name.isascii():  # nearly every name and message: no encode needed
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display(name: str) -> str:
    """A printable, UTF-8 form of `name` for messages: `\\xff` for a byte, `\\n` for a newline."""
    if name.isprintable() and is_utf8(name):
        return name
    raw = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return raw.translate(_CONTROL)


def to_db(name: str) -> str | bytes:
    """What stores `name` in SQLite without loss: text when it is UTF-8, else its bytes."""
    return name if is_utf8(name) else os.fsencode(name)


def from_db(value: str | bytes) -> str:
    """The name `to_db` stored."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def gdal_can_open(path: str) -> bool:
    """Whether GDAL can open `path` by name (else read the file through a Python stream)."""
    return is_utf8(path) and len(path.encode("utf-8")) <= GDAL_MAX_PATH


def needs_uri(path: str) -> bool:
    """Whether a local path cannot be written as an href as it is (so becomes a file: URI)."""
    return not (is_utf8(path) and path.isprintable())


def file_uri(path: str) -> str:
    """A `file://` URI of an absolute local path, every unsafe byte %-escaped."""
    return "file://" + url_quote(path)


def url_quote(path: str) -> str:
    """`path` as a URL path: any byte that cannot appear in one as it is, %-escaped."""
    return quote(os.fsencode(path), safe="/~")
