"""Turn file names into STAC ids and asset keys that are safe as file and folder names.

Every id that becomes part of an output path passes through `safe_id` (item ids through
`item_id`, which is stricter by default); nothing else builds paths.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

MAX_ID_LENGTH = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UNSEARCHABLE = re.compile(r"[^a-z0-9_-]+")

# `catalog.item_ids`: "searchable" ids hold only a-z, 0-9, `_` and `-` (what STAC APIs match
# and stac-check asks for); "keep-case" keeps capitals and dots, as stacsync 0.1 did.
ITEM_ID_SCHEMES = ("searchable", "keep-case")


# Ids are made per file, and a pass holds them for every file: the seven files of a mission
# share one item id and a handful of asset keys, so equal ids are one string, made once.
@functools.lru_cache(maxsize=1024)
def safe_id(raw: str) -> str:
    """Return a non-empty id of [A-Za-z0-9._-] that cannot be `.`/`..` nor escape a folder.

    A path separator becomes `__`. When sanitising had to drop or change characters, or the
    name was too long, a short hash of the raw name keeps distinct names distinct.
    """
    text = _UNSAFE.sub("-", _ascii_path(raw)).strip("-._") or "id"
    # A hash is needed unless nothing changed or the only change was `/` → `__`.
    return _hashed_if(text, raw, text != raw.replace("/", "__"), "-._")


def _ascii_path(raw: str) -> str:
    """`raw` in ASCII (accents dropped), folder separators as `__`."""
    ascii_ = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    return ascii_.replace("/", "__").replace("\\", "__")


def _hashed_if(text: str, raw: str, lossy: bool, trim: str) -> str:
    """`text`, or when it is lossy or too long, cut with a short hash of `raw` appended.

    Room for "-" + digest keeps the result within the limit, so the ids are idempotent.
    """
    if not lossy and len(text) <= MAX_ID_LENGTH:
        return text
    digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{text[: MAX_ID_LENGTH - 9].rstrip(trim)}-{digest}"


@functools.lru_cache(maxsize=1024)
def item_id(raw: str, scheme: str = "searchable") -> str:
    """The item id of `raw` (the `item` group of a match) under a `catalog.item_ids` scheme.

    "searchable": lower case, every run of other characters (dots too) becomes `-`, so
    `Plot7/RGB.byte.tif` is `plot7__rgb-byte-tif`. Case and dots are folded without a hash,
    for ids people can read; two names that fold alike (`A.tif`, `a.tif`) then share an item
    id, which the pass reports as a clash on the second file. Any other change adds a hash.
    "keep-case": `safe_id`.
    """
    if scheme == "keep-case":
        return safe_id(raw)
    if scheme != "searchable":
        raise ValueError(f"unknown item id scheme {scheme!r}; one of {ITEM_ID_SCHEMES}")
    text = _UNSEARCHABLE.sub("-", _ascii_path(raw).lower()).strip("-_") or "id"
    expected = raw.lower().replace("/", "__").replace(".", "-")
    return _hashed_if(text, raw, text != expected, "-_")
