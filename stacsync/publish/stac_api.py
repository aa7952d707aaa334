"""The `StacApi` protocol: a STAC API a pass keeps true, one collection's changes at a time.

`pgstac.PgstacApi` writes the database, `api_transactions.TransactionsApi` speaks HTTP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

from stacsync.core.errors import StacsyncError

# What the API makes for itself (and what would point into the static folder): not pushed.
API_OWN_RELS = frozenset({"self", "root", "parent", "collection", "items", "child", "item"})
# Fields an API may add to what it stores or serves: ignored when comparing.
API_OWN_FIELDS = ("links", "pgstac:base_item")
# The form of a pushed document; part of the acknowledgements' fingerprint, so that a new
# value has every item pushed again once.
API_FORMAT = 1


class StacApiUnavailable(StacsyncError):
    """The API cannot be reached or fails (5xx) after retries: push again next pass."""


@dataclass(frozen=True)
class ApiItem:
    """One item to upsert: its document as the API should hold it, and its json_hash."""

    item_id: str
    doc: dict[str, Any]
    json_hash: str


@dataclass(frozen=True)
class CollectionChange:
    """What one collection needs in the API: its document (None: unchanged), items, deletions."""

    collection_id: str
    doc: dict[str, Any] | None
    upserts: list[ApiItem]
    deletes: list[str]


@dataclass
class ChangeResult:
    """What the API acknowledged of one `CollectionChange`."""

    collection_written: bool = False
    upserted: list[ApiItem] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # item id → the API's message
    requests: int = 0  # statements or HTTP requests it took


class StacApi(Protocol):
    """A STAC API stacsync writes to."""

    label: str

    def apply(self, change: CollectionChange) -> ChangeResult:
        """Write the collection (if given), upsert and delete items; what was acknowledged.

        Raises StacApiUnavailable when the API cannot be reached: nothing is acknowledged.
        """
        ...

    def items(self, collection_id: str) -> Iterator[dict[str, Any]]:
        """Every item the API holds in one collection, as it serves them."""
        ...

    def collection_ids(self) -> set[str]:
        """Ids of the collections the API holds."""
        ...

    def delete_collection(self, collection_id: str) -> None: ...

    def close(self) -> None: ...


def api_item_doc(text: str, base_url: str | None) -> dict[str, Any]:
    """The item as the API should hold it, from the JSON the static catalog wrote.

    The links the API makes itself go; relative hrefs (a thumbnail beside the item, a link
    to a page) become absolute under `base_url`, the item's own public URL, or are left as
    they are (asset) or dropped (link) when the catalog has no public URL.
    """
    doc = json.loads(text)
    links = []
    for link in doc.get("links", []):
        if link.get("rel") in API_OWN_RELS:
            continue
        href = _absolute(link.get("href", ""), base_url)
        if href is not None:
            links.append({**link, "href": href})
    doc["links"] = links
    for asset in doc.get("assets", {}).values():
        href = _absolute(asset.get("href", ""), base_url)
        if href is not None:
            asset["href"] = href
    return doc


def api_collection_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The collection as the API should hold it: its links are the API's own."""
    return {**doc, "links": []}


def _absolute(href: str, base_url: str | None) -> str | None:
    if "://" in href or href.startswith("/"):
        return href
    return urljoin(base_url, href) if base_url else None


def doc_hash(doc: dict[str, Any]) -> str:
    """A hash of a document's content, the same whatever its key order."""
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A document without what the API adds itself, numbers rounded as a database keeps them."""
    out = {k: v for k, v in doc.items() if k not in API_OWN_FIELDS}
    return _rounded(out)


def _rounded(value: Any) -> Any:
    # PostGIS returns coordinates with at most 15 significant digits: compare at 1e-9 degrees.
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        # pgstac's hydration drops a key whose value is null: a null is no value.
        return {k: _rounded(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
