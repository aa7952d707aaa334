"""Check a published STAC catalog folder: schemas, links, asset hrefs and index.geojson.

Offline: absolute URLs are mapped back to local folders when told how, else not checked.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from stacsync.catalog.links import INDEX_PATH, catalog_path
from stacsync.check.index import differing_fields, item_digest, iter_features
from stacsync.check.report import CheckReport, Kind, Problem, Unchecked, UrlMap
from stacsync.check.schemas import SchemaStoreError, SchemaValidator
from stacsync.config.kinds import check_url
from stacsync.core.atomic import TEMP_PREFIX  # what an output sweeps after a crash

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total), like a pass's progress

STAC_TYPES = {"Catalog": "catalogs", "Collection": "collections", "Feature": "items"}
FOLLOWED_RELS = frozenset(("child", "item"))
_PLAIN_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # the same rule as jsonschema's json_path


def check_catalog(
    output: str | os.PathLike[str],
    *,
    public_urls: Sequence[str] = (),
    source_urls: Sequence[UrlMap] = (),
    validator: SchemaValidator | None = None,
    progress: ProgressFn | None = None,
) -> CheckReport:
    """Walk `output/catalog.json` and everything it links; check every file, href and the index.

    `public_urls` are URLs the output folder is served at (the root catalog's self link adds
    its own); `source_urls` map asset URLs back to source folders. Any other absolute URL is
    listed in `unchecked`, never fetched. A `SchemaStoreError` means the schema store itself
    is broken; every problem with the catalog is in the report instead.
    """
    checker = _Checker(
        Path(os.path.normpath(Path(output).absolute())),
        validator or SchemaValidator(),
        [check_url(u) for u in public_urls],
        source_urls,
        progress or (lambda phase, done, total: None),
    )
    return checker.run()


@dataclass(frozen=True)
class _Target:
    """Where an href leads: a local file (maybe missing), or nowhere we can look."""

    path: Path | None  # None: an absolute URL with no local mapping
    exists: bool


class _Checker:
    """One check run: the walk's queue, what was seen, the items the index must list."""

    def __init__(
        self,
        root: Path,
        validator: SchemaValidator,
        public_urls: list[str],
        source_urls: Sequence[UrlMap],
        progress: ProgressFn,
    ) -> None:
        self.root = root
        self.validator = validator
        self.progress = progress
        own = _own_public_url(root)
        self.public_urls = tuple(dict.fromkeys([*public_urls, *([own] if own else [])]))
        maps = [UrlMap(u, root) for u in self.public_urls] + list(source_urls)
        # Longest prefix first, so a source folder published under the catalog's URL wins.
        self.maps = sorted(maps, key=lambda m: len(m.url), reverse=True)
        self.report = CheckReport(root, self.public_urls)
        self.seen: set[Path] = set()
        self.items: dict[tuple[Any, Any], tuple[str, str]] = {}  # (collection, id) → file, digest

    def run(self) -> CheckReport:
        self._walk()
        self._orphans()
        self._index()
        return self.report

    # -- problems ------------------------------------------------------------------------

    def _problem(self, file: str, where: str, message: str, kind: Kind) -> None:
        self.report.problems.append(Problem(file, where, message, kind))

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    # -- the walk ------------------------------------------------------------------------

    def _walk(self) -> None:
        start = self.root / catalog_path()
        if not start.is_file():
            self._problem(catalog_path(), "$", "does not exist (the root catalog)", Kind.JSON)
            return
        queue = deque([start])
        self.seen.add(start)
        done = 0
        while queue:
            path = queue.popleft()
            obj = self._load(path)
            if obj is not None:
                queue.extend(self._check_object(path, obj, follow=True))
            done += 1
            self.progress("catalog", done, done + len(queue))

    def _orphans(self) -> None:
        candidates = [p for p in _json_files(self.root) if p not in self.seen]
        for done, path in enumerate(candidates, start=1):
            obj = self._load(path, quiet_if_not_stac=True)
            if obj is not None:
                self._problem(
                    self._rel(path), "$", "orphan: not reachable from catalog.json", Kind.ORPHAN
                )
                self._check_object(path, obj, follow=False)
            self.progress("orphans", done, len(candidates))

    def _load(self, path: Path, quiet_if_not_stac: bool = False) -> dict[str, Any] | None:
        """The parsed STAC object, or None (with a problem, unless told to stay quiet)."""
        rel = self._rel(path)
        try:
            obj = json.loads(path.read_bytes())
        except OSError as exc:
            self._problem(rel, "$", f"cannot read: {exc.strerror or exc}", Kind.JSON)
            return None
        except ValueError as exc:
            self._problem(rel, "$", f"not valid JSON: {exc}", Kind.JSON)
            return None
        is_stac = isinstance(obj, dict) and obj.get("type") in STAC_TYPES
        # A linked file is taken at its word; a stray one must also say it is STAC (plain
        # GeoJSON Features lying around are not orphans).
        if is_stac and (not quiet_if_not_stac or "stac_version" in obj):
            return obj
        if not quiet_if_not_stac:
            self._problem(rel, "$", "not a STAC Catalog, Collection or Item", Kind.JSON)
        return None

    def _check_object(self, path: Path, obj: dict[str, Any], follow: bool) -> list[Path]:
        """Check one STAC file; return the linked files still to visit."""
        rel = self._rel(path)
        self.report.counts[STAC_TYPES[obj["type"]]] += 1
        self._check_schema(rel, obj)
        targets = self._check_links(path, obj.get("links"), "links")
        if follow:
            targets = [t for t in targets if t not in self.seen and self._inside(t)]
            self.seen.update(targets)
        self._check_assets(path, obj.get("assets"))
        if obj["type"] == "Feature" and follow:
            digest = item_digest(obj, posixpath.dirname(rel))
            self.items.setdefault((obj.get("collection"), obj.get("id")), (rel, digest))
        return targets if follow else []

    def _inside(self, path: Path) -> bool:
        return self.root in path.parents

    # -- schema, links, assets -----------------------------------------------------------

    def _check_schema(self, rel: str, obj: dict[str, Any]) -> None:
        try:
            messages = self.validator.errors(obj)
        except SchemaStoreError as exc:
            self._problem(rel, "$", f"cannot validate: {exc}", Kind.SCHEMA)
            return
        for message in messages:
            where, _, what = message.partition(": ")
            self._problem(rel, _field_path(where), what, Kind.SCHEMA)

    def _check_links(self, path: Path, links: Any, where: str) -> list[Path]:
        """Check every link of a file; return the local targets of child and item links."""
        rel = self._rel(path)
        if not isinstance(links, list):
            return []  # the schema check has said so already
        followed = []
        for i, link in enumerate(links):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                continue  # likewise
            self.report.counts["links"] += 1
            label = f"{where}[{i}] (rel={link.get('rel')})"
            href = link["href"]
            target = self._resolve(path, href)
            if target.path is None:
                self.report.unchecked.append(Unchecked(rel, label, href))
                continue
            if not target.exists:
                self._problem(rel, label, f"{href} does not exist", Kind.LINK)
                continue
            if link.get("rel") == "self" and target.path != path:
                self._problem(
                    rel,
                    label,
                    f"{href} is not this file's URL (it is {self._rel(target.path)})",
                    Kind.LINK,
                )
            if link.get("rel") in FOLLOWED_RELS:
                followed.append(target.path)
        return followed

    def _check_assets(self, path: Path, assets: Any) -> None:
        if not isinstance(assets, dict):
            return
        rel = self._rel(path)
        for key, asset in assets.items():
            if not isinstance(asset, dict) or not isinstance(asset.get("href"), str):
                continue  # the schema check has said so already
            self.report.counts["assets"] += 1
            where = f"assets{_key_path(key)}.href"
            href = asset["href"]
            target = self._resolve(path, href)
            if target.path is None:
                self.report.unchecked.append(Unchecked(rel, where, href))
            elif not target.exists:
                self._problem(rel, where, f"{href} does not exist", Kind.ASSET)

    def _resolve(self, path: Path, href: str) -> _Target:
        """Where `href`, written in the file at `path`, leads on this machine."""
        parts = urlsplit(href)
        if parts.scheme in ("http", "https"):
            for url_map in self.maps:
                local = url_map.local(href)
                if local is not None:
                    local = Path(os.path.normpath(local))
                    return _Target(local, local.is_file())
            return _Target(None, False)
        if parts.scheme == "file":
            # %-escapes may stand for bytes that are not UTF-8 (a file name is any bytes).
            local = Path(os.fsdecode(unquote_to_bytes(parts.path)))
            return _Target(local, local.is_file())
        if len(parts.scheme) > 1:
            return _Target(None, False)  # s3://, irods:// ...: nothing local to look at
        # Relative or a bare absolute path: stacsync writes source paths unescaped, but an
        # href is a URL reference, so also try it with %-escapes, query and fragment undone.
        candidates = [href, unquote(parts.path)]
        locals_ = [Path(os.path.normpath(path.parent / c)) for c in candidates if c]
        for local in locals_:
            if local.is_file():
                return _Target(local, True)
        return _Target(locals_[0] if locals_ else path.parent, False)

    # -- index.geojson -------------------------------------------------------------------

    def _index(self) -> None:
        path = self.root / INDEX_PATH
        if not path.is_file():
            self._problem(INDEX_PATH, "$", "does not exist", Kind.INDEX)
            return
        listed: dict[tuple[Any, Any], int] = {}
        try:
            for i, feature in iter_features(path):
                self._check_feature(path, i, feature, listed)
                self.progress("index", i + 1, max(len(self.items), i + 1))
        except (OSError, ValueError) as exc:
            self._problem(INDEX_PATH, "$", f"not a GeoJSON FeatureCollection: {exc}", Kind.INDEX)
            return
        for key, (item_file, _) in self.items.items():
            if key not in listed:
                self._problem(
                    INDEX_PATH, "features", f"no feature for item {item_file}", Kind.INDEX
                )

    def _check_feature(
        self, path: Path, i: int, feature: Any, listed: dict[tuple[Any, Any], int]
    ) -> None:
        self.report.counts["index features"] += 1
        if not isinstance(feature, dict) or "id" not in feature:
            self._problem(INDEX_PATH, f"features[{i}]", "not a STAC Item feature", Kind.INDEX)
            return
        key = (feature.get("collection"), feature.get("id"))
        label = f"features[{i}] (id={feature['id']})"
        if key in listed:
            self._problem(INDEX_PATH, label, f"duplicate of features[{listed[key]}]", Kind.INDEX)
            return
        listed[key] = i
        self._check_links(path, feature.get("links"), f"features[{i}].links")
        item = self.items.get(key)
        if item is None:
            self._problem(
                INDEX_PATH,
                label,
                f"no item {feature['id']!r} of collection {key[0]!r} is reachable from "
                "catalog.json",
                Kind.INDEX,
            )
        elif item_digest(feature, posixpath.dirname(INDEX_PATH)) != item[1]:
            fields = differing_fields(feature, self.root, item[0])
            self._problem(INDEX_PATH, label, f"{fields} differ from {item[0]}", Kind.INDEX)


# -- helpers ---------------------------------------------------------------------------


def _own_public_url(root: Path) -> str | None:
    """The URL the output says it is served at: its root catalog's self link, minus the file."""
    try:
        catalog = json.loads((root / catalog_path()).read_bytes())
        links = catalog.get("links") or []
        href = next(link["href"] for link in links if link.get("rel") == "self")
    except (OSError, ValueError, AttributeError, KeyError, TypeError, StopIteration):
        return None
    suffix = "/" + catalog_path()
    if not isinstance(href, str) or not href.endswith(suffix):
        return None
    try:
        return check_url(href[: -len(suffix)])
    except ValueError:
        return None


def _json_files(root: Path) -> Iterator[Path]:
    """Every .json file under the output, outside hidden folders, sorted."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(".json") and not name.startswith(TEMP_PREFIX):
                yield Path(folder) / name


def _key_path(key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f".{key}"
    escaped = key.replace("\\", "\\\\").replace("'", r"\'")
    return f"['{escaped}']"


def _field_path(json_path: str) -> str:
    """jsonschema's `$.a.b[0]` as the `a.b[0]` used in every other line."""
    return json_path[2:] if json_path.startswith("$.") else json_path
