"""Collection summaries and item_assets, from the rendered items in one streaming pass.

Plain dicts in and out (the manifest stores a small digest of each item); no pystac here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ItemsSummary:
    """What a collection's items share, and the range or set of the values that differ.

    Made by `summarise_items` in one pass over the rendered items.
    """

    items: int
    summaries: Mapping[str, Any]  # STAC `summaries`, ready to write
    item_assets: Mapping[str, Mapping[str, Any]]  # asset key → fields all its assets share


# Summarised wherever they occur, in item properties or in assets: a set of values, or a range.
_SET_FIELDS = ("constellation", "instruments", "mission", "pc:type", "platform", "proj:code")
_RANGE_FIELDS = ("gsd", "pc:count")
_SUMMARISED_FIELDS = frozenset((*_SET_FIELDS, *_RANGE_FIELDS))
# Asset fields that go into `item_assets` when every asset under the key has the same value;
# `roles` (the roles all of them have) and `bands` (field by field) are handled on their own.
_SHARED_ASSET_FIELDS = ("title", "description", "type", "pc:type", "pc:schemas")
_MISSING = object()
_DIGEST_PROPERTIES = _SUMMARISED_FIELDS | {"start_datetime", "datetime", "end_datetime"}
_DIGEST_ASSET_FIELDS = _SUMMARISED_FIELDS | {*_SHARED_ASSET_FIELDS, "roles", "bands"}


def summary_digest(item: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an item `summarise_items` reads, and nothing else (no geometry, hrefs…).

    `summarise_items` gives the same result for digests as for the items themselves.
    """
    properties = item.get("properties") or {}
    assets = item.get("assets") or {}
    return {
        "properties": {k: v for k, v in properties.items() if k in _DIGEST_PROPERTIES},
        "assets": {
            key: {k: v for k, v in asset.items() if k in _DIGEST_ASSET_FIELDS}
            for key, asset in assets.items()
            if isinstance(asset, Mapping)
        },
    }


def summarise_items(items: Iterable[Mapping[str, Any]]) -> ItemsSummary:
    """Summaries and item_assets of a collection, from its rendered items.

    `items` is consumed once and only one item is held at a time, so a collection of any size
    costs one parse per item and memory for the distinct values (sets stay small: platforms,
    CRSs), never for the items.
    """
    digest = _CollectionDigest()
    for item in items:
        digest.add(item)
    return digest.result()


class _Range:
    """Running minimum and maximum; `order` maps a value to what is compared."""

    def __init__(self, order: Callable[[Any], Any] = lambda v: v) -> None:
        self.order = order
        self.low: tuple[Any, Any] | None = None  # (order key, value)
        self.high: tuple[Any, Any] | None = None

    def add(self, value: Any) -> None:
        key = self.order(value)
        if self.low is None or key < self.low[0]:
            self.low = (key, value)
        if self.high is None or key > self.high[0]:
            self.high = (key, value)

    def render(self) -> dict[str, Any] | None:
        if self.low is None or self.high is None:
            return None
        return {"minimum": self.low[1], "maximum": self.high[1]}


class _CollectionDigest:
    """The running state of `summarise_items`."""

    def __init__(self) -> None:
        self.items = 0
        self.sets: dict[str, set[str]] = {name: set() for name in _SET_FIELDS}
        self.ranges = {name: _Range() for name in _RANGE_FIELDS}
        # Compared as instants: ISO strings with and without fractional seconds do not sort.
        self.datetime = _Range(order=parse_datetime)
        self.assets: dict[str, _AssetDigest] = {}

    def add(self, item: Mapping[str, Any]) -> None:
        self.items += 1
        properties = item.get("properties") or {}
        self._add_fields(properties)
        for name in ("start_datetime", "datetime", "end_datetime"):
            if parse_datetime(properties.get(name)) is not None:
                self.datetime.add(properties[name])
        for key, asset in (item.get("assets") or {}).items():
            if isinstance(asset, Mapping):
                self._add_fields(asset)
                self.assets.setdefault(key, _AssetDigest()).add(asset)

    def _add_fields(self, fields: Mapping[str, Any]) -> None:
        # Only the names present: this runs for every asset of every item.
        for name in _SUMMARISED_FIELDS & fields.keys():
            value = fields[name]
            if name in self.ranges:
                if _is_number(value):
                    self.ranges[name].add(value)
            elif isinstance(value, str):
                self.sets[name].add(value)
            elif isinstance(value, list) and name == "instruments":  # the one list-valued field
                self.sets[name].update(v for v in value if isinstance(v, str))

    def result(self) -> ItemsSummary:
        summaries: dict[str, Any] = {}
        for name, values in self.sets.items():
            if values:
                summaries[name] = sorted(values)
        for name, found in [*self.ranges.items(), ("datetime", self.datetime)]:
            rendered = found.render()
            if rendered is not None:
                summaries[name] = rendered
        return ItemsSummary(
            items=self.items,
            summaries=dict(sorted(summaries.items())),
            item_assets={key: d.shared() for key, d in sorted(self.assets.items())},
        )


class _AssetDigest:
    """What every asset seen so far under one asset key has in common."""

    def __init__(self) -> None:
        self.count = 0
        self.fields: dict[str, Any] = {}
        self.roles: list[str] = []
        self.bands: list[dict[str, Any]] | None = None

    def add(self, asset: Mapping[str, Any]) -> None:
        fields = {k: asset[k] for k in _SHARED_ASSET_FIELDS if k in asset}
        found = asset.get("roles")
        roles = [r for r in found if isinstance(r, str)] if isinstance(found, list) else []
        bands = asset.get("bands")
        if self.count == 0:
            self.fields, self.roles = fields, sorted(set(roles))
            self.bands = _bands(bands)
        else:
            self.fields = {k: v for k, v in self.fields.items() if fields.get(k, _MISSING) == v}
            self.roles = [r for r in self.roles if r in roles]
            self.bands = _common_bands(self.bands, bands)
        self.count += 1

    def shared(self) -> dict[str, Any]:
        out = {k: self.fields[k] for k in ("title", "description", "type") if k in self.fields}
        if self.roles:
            out["roles"] = list(self.roles)
        if self.bands and any(self.bands):  # bands that share nothing promise nothing
            out["bands"] = self.bands
        out.update((k, v) for k, v in sorted(self.fields.items()) if k not in out)
        return out


def _bands(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not all(isinstance(b, Mapping) for b in value):
        return None
    return [dict(b) for b in value]


def _common_bands(common: list[dict[str, Any]] | None, value: Any) -> list[dict[str, Any]] | None:
    """Band by band, the fields with the same value; None once the band counts differ."""
    bands = _bands(value)
    if common is None or bands is None or len(bands) != len(common):
        return None
    return [
        {k: v for k, v in mine.items() if theirs.get(k, _MISSING) == v}
        for mine, theirs in zip(common, bands, strict=True)
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 text (naive taken as UTC); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive and aware datetimes do not compare; STAC datetimes are UTC anyway.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
