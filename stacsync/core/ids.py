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
    too_long = len(text) > MAX_ID_LENGTH
    if too_long or _needs_hash(raw, text):
        digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        # Room for "-" + digest keeps the result within the limit, so safe_id is idempotent.
        text = f"{text[: MAX_ID_LENGTH - 9].rstrip('-._')}-{digest}"
    return text


def _needs_hash(raw: str, text: str) -> bool:
    """A hash is needed unless nothing changed or the only change was `/` → `__`."""
    return text != raw.replace("/", "__")
