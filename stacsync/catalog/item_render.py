"""One item's bytes from what the manifest holds for it: the pure half of rendering an item.

`Renderer` gathers `ItemJob`s and writes what comes back; a first build runs `render_job` in its
extraction processes, so the coordinating process only reads the manifest, writes and commits.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # items loads pystac: only a worker that renders pays for it
    from stacsync.catalog.items import AssetInput, ItemInput

Offload = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]
"""offload(fn, jobs): fn over jobs, results in order (where the pass's workers are, or here)."""


@dataclass(frozen=True, slots=True)
class ItemJob:
    """Everything an item file and its manifest row are made from (picklable)."""

    item: ItemInput
    plain: tuple[AssetInput, ...]  # assets published as they are (a PNG), see plain_assets
    public_url: str | None


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """An item as written, and what the manifest keeps of it."""

    data: bytes  # the item file
    digest: str  # sha256 hex of `data`
    facts: str  # summaries.summary_digest as one JSON line: what collection summaries read
    feature: str  # its line of index.geojson
    bbox: tuple[float, float, float, float]
    start: str | None
    end: str | None


def render_job(job: ItemJob) -> RenderedItem | str:
    """The rendered item, or the traceback of why it could not be (a worker cannot log here)."""
    try:
        return _render(job)
    except Exception:  # the item stays dirty and is tried again next pass; the rest goes on
        return traceback.format_exc()


def render_all(jobs: list[ItemJob], offload: Offload | None) -> list[RenderedItem | str]:
    """`render_job` over the jobs, in order: in the pass's workers when it has some."""
    if offload is None or len(jobs) < 2:
        return [render_job(job) for job in jobs]
    return list(offload(render_job, jobs))


def _render(job: ItemJob) -> RenderedItem:
    from stacsync.catalog import index, items, model, plain_assets, summaries
    from stacsync.catalog.links import INDEX_PATH, Links, item_path
    from stacsync.core.checksum import sha256_hex

    links = Links(job.public_url)
    item = plain_assets.with_plain(items.render_item(job.item, links), job.plain)
    data = model.dumps(item)
    href = links.href(INDEX_PATH, item_path(item["collection"], item["id"]))
    west, south, east, north = item["bbox"]
    props = item["properties"]
    return RenderedItem(
        data=data,
        digest=sha256_hex(data),
        facts=model.feature_line(summaries.summary_digest(item)),
        feature=model.feature_line(index.index_feature(item, href)),
        bbox=(west, south, east, north),
        start=props.get("start_datetime") or props.get("datetime"),
        end=props.get("end_datetime") or props.get("datetime"),
    )
