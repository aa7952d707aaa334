"""Pages: long lists of item (or collection) links split so that no file links more than 20.

Where an id goes depends only on its hash and the set of ids, so pages are stable: adding
or removing one id changes only the pages on its way, and no item file ever changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pystac

from stacsync.catalog.links import JSON_TYPE, Links, catalog_path, page_path
from stacsync.catalog.model import link, to_dict

# Links a page (or its owner) holds to what it lists. With root, parent, self and a license
# link beside them, an object has at most 20 links: stac-check's `bloated_links` limit.
PAGE_LINKS = 16
_MAX_DEPTH = 16  # hex digits of the hash; 16 ids sharing 64 bits of a sha256 do not happen


@dataclass(frozen=True)
class Page:
    """One node of the page tree; the owner (collection or catalog) is the node with prefix ""."""

    prefix: str  # hex digits of the id hash that every id under this page starts with
    ids: tuple[str, ...]  # the ids this page links, sorted (a leaf); empty when it has pages
    pages: tuple[str, ...]  # prefixes of its own pages, sorted; empty for a leaf
    count: int  # ids under this page, at any depth


def page_tree(ids: Iterable[str]) -> list[Page]:
    """Every node, the owner's first: a node with more than PAGE_LINKS ids is split by the
    next hex digit of its ids' sha256 into at most 16 pages."""
    hashed = sorted((_hash(i), i) for i in set(ids))
    out: list[Page] = []
    _split("", hashed, out)
    return out


def _split(prefix: str, members: list[tuple[str, str]], out: list[Page]) -> None:
    if len(members) <= PAGE_LINKS or len(prefix) >= _MAX_DEPTH:
        out.append(Page(prefix, tuple(sorted(i for _, i in members)), (), len(members)))
        return
    groups: dict[str, list[tuple[str, str]]] = {}
    for digest, member in members:
        groups.setdefault(digest[: len(prefix) + 1], []).append((digest, member))
    out.append(Page(prefix, (), tuple(sorted(groups)), len(members)))
    for child in sorted(groups):
        _split(child, groups[child], out)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:_MAX_DEPTH]


@dataclass(frozen=True)
class Listed:
    """What an owner lists, through pages when there are many: its ids and how to link one."""

    owner_path: str  # e.g. "ofo/collection.json"
    owner_id: str
    owner_title: str
    catalog_title: str  # the title of root links
    rel: str  # "item" or "child"
    media_type: str
    target: Callable[[str], str]  # id → its file, root-relative
    title: Callable[[str], str]  # id → the title of its link
    noun: str  # "items" or "collections", for page titles and descriptions


def owner_links(listed: Listed, tree: list[Page], links: Links) -> list[pystac.Link]:
    """The owner's links to what it lists: the ids themselves, or its first pages."""
    return _listing_links(listed, tree[0], links)


def render_pages(
    listed: Listed,
    tree: list[Page],
    links: Links,
    code: str = "",
    kept: Callable[[str, str], bool] = lambda path, inputs: False,
) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(root-relative path, inputs, STAC Catalog dict) of every page below the owner, made as
    they are consumed; the dict is None for a page `kept(path, inputs)` says is on disk as
    those inputs make it.

    `code` names the code that renders (an upgrade re-renders every page once).
    """
    parents = {child: page.prefix for page in tree for child in page.pages}
    for page in tree[1:]:
        path = page_path(listed.owner_path, page.prefix)
        inputs = page_inputs(listed, page, parents[page.prefix], links, code)
        doc = None if kept(path, inputs) else _render_page(listed, page, parents, links)
        yield path, inputs, doc


def page_inputs(listed: Listed, page: Page, parent: str, links: Links, code: str) -> str:
    """A digest of everything a page's bytes are made from: equal inputs, equal bytes.

    Hashing these is ~50x cheaper than building the page, and a collection of 10,000 items
    has ~700 pages of which a pass that touches one item changes at most a few.
    """
    made_of = (
        code,
        pystac.__version__,
        listed.owner_path,
        listed.owner_id,
        listed.owner_title,
        listed.catalog_title,
        listed.rel,
        listed.media_type,
        listed.noun,
        links.public_url,
        page,
        parent,
        [(listed.target(i), listed.title(i)) for i in page.ids],
    )
    return hashlib.sha256(repr(made_of).encode("utf-8", "surrogateescape")).hexdigest()


def _render_page(
    listed: Listed, page: Page, parents: dict[str, str], links: Links
) -> dict[str, Any]:
    path = page_path(listed.owner_path, page.prefix)
    title = f"{listed.owner_title}: {listed.noun} {page.prefix}…"
    catalog = pystac.Catalog(
        id=f"{listed.owner_id}-page-{page.prefix}",
        title=title,
        description=(
            f"{page.count} of the {listed.noun} of {listed.owner_title}, those whose id "
            f"hashes (sha256, hex) start with {page.prefix}. Pages keep every file under "
            f"{PAGE_LINKS} links to {listed.noun}."
        ),
    )
    catalog.clear_links()
    parent_prefix = parents[page.prefix]
    parent = page_path(listed.owner_path, parent_prefix)
    parent_title = listed.owner_title if not parent_prefix else f"{listed.noun} {parent_prefix}…"
    root = links.href(path, catalog_path())
    catalog.add_links(
        [
            link("root", root, JSON_TYPE, listed.catalog_title),
            link("parent", links.href(path, parent), JSON_TYPE, parent_title),
            *_listing_links(listed, page, links),
        ]
    )
    own = links.self_href(path)
    if own is not None:
        catalog.add_link(link("self", own, JSON_TYPE, title))
    return to_dict(catalog)


def _listing_links(listed: Listed, page: Page, links: Links) -> list[pystac.Link]:
    path = page_path(listed.owner_path, page.prefix)
    if page.pages:
        return [
            link(
                "child",
                links.href(path, page_path(listed.owner_path, p)),
                JSON_TYPE,
                f"{listed.noun} {p}…",
            )
            for p in page.pages
        ]
    return [
        link(listed.rel, links.href(path, listed.target(i)), listed.media_type, listed.title(i))
        for i in page.ids
    ]
