"""Turn file names into STAC ids and asset keys that are safe as file and folder names.

Every id that becomes part of an output path passes through `safe_id`; nothing else builds paths.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(raw: str) -> str:
    """Return a non-empty id of [A-Za-z0-9._-] that cannot be `.`/`..` nor escape a folder.

    A path separator becomes `__`. When sanitising had to drop or change characters, or the
    name was too long, a short hash of the raw name keeps distinct names distinct.
    """
    ascii_ = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    text = ascii_.replace("/", "__").replace("\\", "__")
    text = _UNSAFE.sub("-", text).strip("-._") or "id"
    changed = text != raw
    if len(text) > MAX_ID_LENGTH:
        text = text[:MAX_ID_LENGTH].rstrip("-._")
        changed = True
    if changed and _needs_hash(raw, text):
        digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        text = f"{text}-{digest}"
    return text


def _needs_hash(raw: str, text: str) -> bool:
    """A hash is needed unless the only change was `/` → `__` on otherwise safe text."""
    return text != raw.replace("/", "__")
