"""Reading `index.geojson` back, and comparing each feature with the item it stands for.

Features are streamed line by line when stacsync framed the file; any other layout is parsed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from stacsync.catalog.links import INDEX_PATH

_INDEX_HEAD = b'{"type":"FeatureCollection","features":['  # how index.write_index frames it


def iter_features(path: Path) -> Iterator[tuple[int, Any]]:
    """The index's features, streamed line by line when stacsync wrote it (it can be big)."""
    with path.open("rb") as stream:
        head = stream.readline()
        if head.strip() != _INDEX_HEAD:
            data = json.loads(head + stream.read())
            if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
                raise ValueError("the top level is not a FeatureCollection")
            features = data.get("features")
            if not isinstance(features, list):
                raise ValueError("'features' is not an array")
            yield from enumerate(features)
            return
        yield from _framed_features(stream)


def _framed_features(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    count = 0
    for number, raw in enumerate(lines, start=2):
        line = raw.strip()
        if line == b"]}":
            return
        if line:
            try:
                yield count, json.loads(line.removesuffix(b","))
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
            count += 1
    raise ValueError("truncated: no closing ']}'")


def item_digest(obj: dict[str, Any], folder: str) -> str:
    """What an item and its index feature share: everything but links."""
    text = json.dumps(
        _comparable(obj, folder), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _comparable(obj: dict[str, Any], folder: str) -> dict[str, Any]:
    """Everything but links, relative asset hrefs (a thumbnail beside its item) taken as where
    they lead from `folder`, the folder of the file holding them: the index rebases them."""
    body = {key: value for key, value in obj.items() if key != "links"}
    assets = body.get("assets")
    if isinstance(assets, dict):
        body["assets"] = {
            key: _resolved_href(asset, folder) if isinstance(asset, dict) else asset
            for key, asset in assets.items()
        }
    return body


def _resolved_href(asset: dict[str, Any], folder: str) -> dict[str, Any]:
    href = asset.get("href")
    if not isinstance(href, str) or "://" in href or href.startswith("/"):
        return asset
    return {**asset, "href": posixpath.normpath(posixpath.join(folder, href))}


def differing_fields(feature: dict[str, Any], root: Path, item_file: str) -> str:
    try:
        item = json.loads((root / item_file).read_bytes())
    except (OSError, ValueError):
        return "fields"
    feature = _comparable(feature, posixpath.dirname(INDEX_PATH))
    item = _comparable(item, posixpath.dirname(item_file))
    keys = sorted(set(feature) | set(item))
    differ = [k for k in keys if feature.get(k, ...) != item.get(k, ...)]
    return ", ".join(differ) or "fields"
