"""What collections are rendered from, read from the manifest: their config, extents, item ids
and the summary digests of their items (rendering them is `catalog.collections`' job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stacsync.catalog import summaries

if TYPE_CHECKING:
    from stacsync.config.settings import Settings
    from stacsync.manifest.db import Manifest


def collection_input(settings: Settings, db: Manifest, cid: str, items_summary: Any) -> Any:
    """What the collection `cid` is rendered from: its config, the manifest's aggregates."""
    from stacsync.catalog.collections import CollectionInput

    collection = next(c for c in settings.collections if c.id == cid)
    extent = db.collection_extent(cid)
    return CollectionInput(
        id=cid,
        title=collection.title,
        description=collection.description,
        license=collection.license,
        keywords=collection.keywords,
        providers=collection.providers,
        bbox=extent["bbox"],
        start=extent["start"],
        end=extent["end"],
        item_ids=db.collection_item_ids(cid),
        items_summary=items_summary,
        asset_titles=collection.asset_titles,
        license_url=collection.license_url,
        catalog_title=settings.catalog_title or settings.catalog_id,
    )


def stored_digests(db: Manifest, cid: str) -> Iterator[dict[str, Any]]:
    """The collection's item digests, parsed one at a time as a summary consumes them; an item
    rendered before digests were stored is digested from its JSON."""
    for digest, text in db.collection_item_digests(cid):
        yield json.loads(digest) if digest else summaries.summary_digest(json.loads(text))
