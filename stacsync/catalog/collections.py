"""Collections and the root catalog as pystac objects, from aggregates the manifest keeps.

Extents, item ids and summaries come in ready-made: no item is read, no tree is walked.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pystac

from stacsync.catalog.items import title_from_key
from stacsync.catalog.links import (
    GEOJSON_TYPE,
    HTML_TYPE,
    JSON_TYPE,
    Links,
    catalog_path,
    collection_path,
    item_path,
)
from stacsync.catalog.model import declare_used, link, plain, to_dict
from stacsync.catalog.pages import Listed, Page, owner_links, page_tree
from stacsync.catalog.summaries import ItemsSummary, parse_datetime
from stacsync.config.templates import DESCRIPTION, Template
from stacsync.core.records import BBox

SPDX_LICENSE_URL = "https://spdx.org/licenses/{}.html"
# STAC's words for "no single SPDX license": spdx.org has no page to link them to.
_NOT_SPDX = frozenset(("other", "proprietary", "various"))
_SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\+?")

WORLD_BBOX: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class CollectionInput:
    """A collection's own fields plus aggregates the caller computed from the manifest."""

    id: str
    title: str | None
    # A template: {items}, {start}, {end}, {id} and {title} are filled in (see _description).
    description: str
    license: str
    keywords: tuple[str, ...]
    providers: tuple[Mapping[str, Any], ...]
    bbox: BBox | None  # union of item bboxes; None when the collection is empty
    start: str | None
    end: str | None
    item_ids: tuple[str, ...]
    extra_fields: Mapping[str, Any] = field(default_factory=dict)
    items_summary: ItemsSummary | None = None  # None: no summaries, no item_assets
    asset_titles: Mapping[str, str] = field(default_factory=dict)  # asset key → title
    license_url: str | None = None  # the license text; default spdx.org for an SPDX id
    catalog_title: str = "Catalog"  # the title of the root and parent links: the catalog's


@dataclass(frozen=True)
class CatalogInput:
    """The root catalog."""

    id: str
    title: str | None
    description: str
    collection_ids: tuple[str, ...]
    collection_titles: Mapping[str, str] = field(default_factory=dict)  # id → title, if any


def collection_listing(c: CollectionInput) -> Listed:
    """The collection's items as `pages` lists them (an item link is titled by its id)."""
    return Listed(
        owner_path=collection_path(c.id),
        owner_id=c.id,
        owner_title=c.title or c.id,
        catalog_title=c.catalog_title,
        rel="item",
        media_type=GEOJSON_TYPE,
        target=lambda i: item_path(c.id, i),
        # Titled by the item id: a collection is rendered from ids, no item is read.
        title=lambda i: i,
        noun="items",
    )


def catalog_listing(c: CatalogInput) -> Listed:
    """The catalog's collections as `pages` lists them."""
    return Listed(
        owner_path=catalog_path(),
        owner_id=c.id,
        owner_title=c.title or c.id,
        catalog_title=c.title or c.id,
        rel="child",
        media_type=JSON_TYPE,
        target=collection_path,
        title=lambda cid: c.collection_titles.get(cid) or cid,
        noun="collections",
    )


def render_collection(
    c: CollectionInput, links: Links, tree: list[Page] | None = None
) -> dict[str, Any]:
    """STAC Collection dict, with an `item` link per item id, or `child` links to its pages
    when it has more than `pages.PAGE_LINKS` items (`tree`: `page_tree(c.item_ids)`)."""
    path = collection_path(c.id)
    summaries: dict[str, Any] = {}
    item_assets: dict[str, dict[str, Any]] = {}
    if c.items_summary is not None:
        summaries = dict(c.items_summary.summaries)
        item_assets = _item_assets(c.items_summary, c.asset_titles)
    extra = plain(c.extra_fields)
    declared = extra.pop("stac_extensions", [])
    summaries = _merge_extra(extra, summaries, _rendered_fields(c, summaries, item_assets), c.id)
    collection = pystac.Collection(
        id=c.id,
        description=_description(c),
        extent=_extent(c),
        title=c.title or None,
        license=c.license,
        keywords=list(c.keywords) or None,
        providers=[pystac.Provider.from_dict(p) for p in plain(c.providers)] or None,
        # Every value is kept: pystac's default maxcount leaves out lists of 25 or more.
        summaries=pystac.Summaries(summaries, maxcount=sys.maxsize),
    )
    collection.clear_links()  # the constructor's root link points at the object in memory
    if item_assets:
        collection.item_assets = {k: pystac.ItemAssetDefinition(v) for k, v in item_assets.items()}
    collection.extra_fields.update(extra)
    declare_used(collection, [extra, summaries, *item_assets.values()])
    for url in declared:  # for fields of extensions stacsync does not know
        if url not in collection.stac_extensions:
            collection.stac_extensions.append(url)
    root = links.href(path, catalog_path())
    collection.add_links(
        [
            link("root", root, JSON_TYPE, c.catalog_title),
            link("parent", root, JSON_TYPE, c.catalog_title),
            *owner_links(collection_listing(c), tree or page_tree(c.item_ids), links),
            # After the items, so that item links keep their positions (links[2 + i]).
            *_license_links(c.license, c.license_url),
        ]
    )
    own = links.self_href(path)
    if own is not None:
        collection.add_link(link("self", own, JSON_TYPE, c.title or c.id))
    return to_dict(collection)


def _rendered_fields(
    c: CollectionInput, summaries: Mapping[str, Any], item_assets: Mapping[str, Any]
) -> set[str]:
    """The top-level fields rendered from the inputs, which extra fields may not replace."""
    fields = {"type", "stac_version", "stac_extensions", "id", "description", "license"}
    fields |= {"extent", "links"}
    optional = {
        "title": c.title,
        "keywords": c.keywords,
        "providers": c.providers,
        "summaries": summaries,
        "item_assets": item_assets,
    }
    return fields | {name for name, value in optional.items() if value}


def _merge_extra(
    extra: dict[str, Any], summaries: dict[str, Any], rendered: set[str], cid: str
) -> dict[str, Any]:
    """The summaries to write; refuses extra fields that would replace a rendered field.

    Extra `summaries` join the computed ones, key by key (and are taken out of `extra`).
    """
    if isinstance(extra.get("summaries"), Mapping):
        more = extra.pop("summaries")
        clash = sorted(set(more) & set(summaries))
        if clash:
            raise ValueError(f"collection {cid!r}: extra summaries {clash} would replace computed")
        summaries = dict(sorted({**summaries, **more}.items()))
    clash = sorted(set(extra) & rendered)
    if clash:
        raise ValueError(f"collection {cid!r}: extra fields {clash} would replace rendered fields")
    return summaries


def _extent(c: CollectionInput) -> pystac.Extent:
    bbox = list(c.bbox) if c.bbox is not None else list(WORLD_BBOX)
    # The item datetimes as pystac wrote them: parsed, they are written back the same.
    interval = [parse_datetime(c.start), parse_datetime(c.end)]
    return pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([interval]))


def _description(c: CollectionInput) -> str:
    """The description template with counts and dates filled in (see stacsync.config.templates).

    The config check refuses what cannot be filled; should such a template get here anyway (a
    caller that skipped the check), the text is published as written rather than failing the
    collection. Either way it is at most `MAX_DESCRIPTION` characters.
    """
    values = {
        "items": len(c.item_ids),
        "start": _day(c.start),
        "end": _day(c.end),
        "id": c.id,
        "title": c.title or c.id,
    }
    try:
        template = Template.parse(c.description, DESCRIPTION)
    except ValueError:
        template = Template.literal(c.description, DESCRIPTION)
    return template.fill(values)


def _day(value: str | None) -> date | None:
    # A date fills in as YYYY-MM-DD, or through strftime with a spec: "{start:%B %Y}";
    # None (an empty collection) as "unknown".
    moment: datetime | None = parse_datetime(value) if value else None
    return moment.date() if moment is not None else None


def _license_links(license_id: str, url: str | None) -> list[pystac.Link]:
    """A `license` link: the configured URL, else the SPDX page of an SPDX license id."""
    if url:
        # Whatever the URL serves (HTML, PDF, text) is unknown, so no `type` is claimed.
        return [link("license", url, title=f"License: {license_id}")]
    if (
        license_id.lower() in _NOT_SPDX
        or license_id.startswith(("LicenseRef-", "DocumentRef-"))  # user-defined ids
        or not _SPDX_ID.fullmatch(license_id)
    ):
        return []  # "other", a private id or an SPDX expression: no spdx.org page to point at
    url = SPDX_LICENSE_URL.format(license_id)
    return [link("license", url, HTML_TYPE, f"License: {license_id}")]


def _item_assets(summary: ItemsSummary, titles: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """`item_assets`: per asset key, a title a person can read and what its assets share."""
    out: dict[str, dict[str, Any]] = {}
    for key, shared in summary.item_assets.items():
        entry = {"title": titles.get(key) or shared.get("title") or title_from_key(key)}
        entry.update((k, v) for k, v in shared.items() if k != "title")
        # The schema asks for two fields at least; a key whose assets share nothing but a
        # title (mixed media types and roles) has nothing to promise about its assets.
        if len(entry) >= 2:
            out[key] = entry
    return out


def render_catalog(c: CatalogInput, links: Links, tree: list[Page] | None = None) -> dict[str, Any]:
    """STAC Catalog dict, with a `child` link per collection id, or to its pages when there
    are more than `pages.PAGE_LINKS` collections (`tree`: `page_tree(c.collection_ids)`)."""
    path = catalog_path()
    catalog = pystac.Catalog(id=c.id, description=c.description, title=c.title or None)
    catalog.clear_links()  # the constructor's root link points at the object in memory
    title = c.title or c.id
    catalog.add_links(
        [
            link("root", links.href(path, path), JSON_TYPE, title),
            *owner_links(catalog_listing(c), tree or page_tree(c.collection_ids), links),
        ]
    )
    own = links.self_href(path)
    if own is not None:
        catalog.add_link(link("self", own, JSON_TYPE, title))
    return to_dict(catalog)
