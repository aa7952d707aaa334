"""The `[[collection]]` part of the config registry: how files become items and assets.

`stacsync.config.registry` puts these sections after the run-wide ones in `SECTIONS`.
"""

from __future__ import annotations

from typing import Any

from stacsync.config.keys import REQUIRED, Key, Section
from stacsync.core.ids import safe_id

PROVIDER_ROLES = ("licensor", "producer", "processor", "host")
PC_TYPES = ("lidar", "eopc", "radar", "sonar", "other")
DEFAULT_ITEM_TITLE = "{id} ({date:%Y-%m-%d})"
DEFAULT_ASSET_TITLES: dict[str, str] = {
    "orthomosaic": "Orthomosaic",
    "chm-mesh": "Canopy height model (from mesh)",
    "chm-ptcloud": "Canopy height model (from point cloud)",
    "dsm-mesh": "Digital surface model (from mesh)",
    "dsm-ptcloud": "Digital surface model (from point cloud)",
    "dtm-mesh": "Digital terrain model (from mesh)",
    "dtm-ptcloud": "Digital terrain model (from point cloud)",
    "points": "Point cloud",
    "data": "Data",
}

COLLECTION_SECTIONS: tuple[Section, ...] = (
    Section(
        "collection",
        "One STAC collection: which files belong to it and how they group into items.",
        (
            Key("id", "id", REQUIRED, "Collection id; also its folder name.", "my-collection"),
            Key("title", "str", None, "Human title.", "My drone products"),
            Key(
                "description",
                "str",
                None,
                "Description; defaults to the title, else the id (then used as written). A "
                "template: `{items}` (the number of items; a number format after a colon: "
                "`{items:,}`), `{start}` and `{end}` (first and last date, `YYYY-MM-DD`, "
                "`unknown` while empty; or a strftime format of allowed directives: "
                "`{start:%B %Y}`), `{id}` and `{title}` are filled in; `{{` and `}}` are "
                "literal braces. Only these plain names: no attribute access, indexing or `!r`; "
                "widths and precisions up to 200. Cut at 10,000 characters.",
                "{items} missions flown between {start} and {end}.",
            ),
            Key(
                "item_title",
                "str",
                DEFAULT_ITEM_TITLE,
                "Title of each item, a template: `{id}`, `{date}` (the item's date; a strftime "
                "format of allowed directives after a colon), `{collection}` (the collection's "
                "title, else its id) and `{properties[NAME]}` (one of the item's properties if "
                "it is a string, number or boolean; else empty) are filled in; `{{` and `}}` "
                "are literal braces. Only these plain names: no attribute access, other "
                "indexing or `!r`; widths and precisions up to 200. Runs of whitespace become "
                "one space; cut at 500 characters.",
                "Mission {id}, flown {date:%d %B %Y}",
            ),
            Key(
                "license",
                "str",
                "other",
                "SPDX license id, e.g. `CC-BY-4.0` (linked to its spdx.org page), or `other`.",
            ),
            Key(
                "license_url",
                "url",
                None,
                "Web page of the license, linked from the collection (`rel: license`). Give it "
                "for `other`; it replaces the spdx.org page of an SPDX id.",
                "https://example.org/data-license",
            ),
            Key("keywords", "strings", [], "Keywords.", ["drone", "forest"]),
            Key(
                "match",
                "regex",
                REQUIRED,
                "Regex (RE2 syntax: no backreferences or lookaround; `.` also matches a "
                "newline) searched in each file's path relative to `source.path`; the first "
                "collection whose regex matches gets the file. Named groups: `item` (the item "
                "id; required unless `table.item_column`), `asset` (asset key; default "
                "`data`), `key` (the table join key; default: `item`, else `asset`).",
                r"^(?P<item>.+)$",
            ),
            Key(
                "crs",
                "crs",
                None,
                "CRS assumed for files that declare none (never overrides a file's own CRS).",
                "EPSG:32610",
            ),
            Key(
                "default_datetime",
                "datetime",
                None,
                "Item datetime when neither the table nor the file gives one. Naive values "
                "are taken as UTC.",
                "2023-05-25T12:00:00Z",
            ),
            Key(
                "pc_type",
                "choice",
                "lidar",
                "`pc:type` of point clouds.",
                choices=PC_TYPES,
            ),
        ),
        array=True,
        min_items=1,
    ),
    Section(
        "collection.providers",
        "STAC providers of the collection.",
        (
            Key("name", "str", REQUIRED, "Provider name.", "Open Forest Observatory"),
            Key(
                "description",
                "str",
                None,
                "What the provider did.",
                "Flew and processed the missions",
            ),
            Key(
                "roles",
                "choices",
                [],
                "Any of licensor, producer, processor, host.",
                ["producer", "processor"],
                choices=PROVIDER_ROLES,
            ),
            Key("url", "url", None, "Provider homepage.", "https://openforestobservatory.org"),
        ),
        array=True,
    ),
    Section(
        "collection.asset_titles",
        "Asset key → human title. Merged over a built-in map that covers the OFO names "
        + ", ".join(f"`{k}`" for k in DEFAULT_ASSET_TITLES)
        + ".",
        free_form="str",
    ),
    Section(
        "collection.asset_keys",
        "Asset name (what the `asset` group captured) → asset key, so that several names "
        "become one key (RE2 has no duplicate group names): "
        '`"ortho-dsm-ptcloud" = "orthomosaic"`. Names not listed keep their own key; keys pass '
        "through `safe_id`.",
        free_form="str",
    ),
    Section(
        "collection.table",
        "A metadata table (`.csv` or `.gpkg` GeoPackage) with one row per join key.",
        (
            Key(
                "path",
                "source_path",
                REQUIRED,
                "The table file. Read lazily, when the first file needs it. With `per_item`, "
                "a template: `{item}` stands for each file's `item` group.",
                "metadata/table.csv",
            ),
            Key(
                "per_item",
                "bool",
                False,
                "One table file per item, `path` naming it with `{item}` (e.g. "
                "`{item}/metadata/{item}.gpkg`): the file's only row describes the item (with "
                "`key`, the row whose `key` equals the item's join key). `source.include` must "
                "list these files (e.g. `*.gpkg`); they are not cataloged themselves. A changed "
                "file re-renders its item only; a missing or unreadable one puts that item's "
                "files in error.",
            ),
            Key("layer", "str", None, "GeoPackage layer; default the first one.", "missions"),
            Key(
                "key",
                "column",
                None,
                "Column joined to the regex `key` group (else `item`, else `asset`). Required "
                "unless `per_item`.",
                "id",
            ),
            Key(
                "item_column",
                "column",
                None,
                "Column giving the item id (several files, one item): the files of rows with "
                "the same value form one item.",
                "plot",
            ),
            Key(
                "datetime",
                "column",
                None,
                "Column giving the item datetime. Dates become midnight UTC; naive "
                "datetimes are taken as UTC; aware ones are converted to UTC.",
                "collection_date",
            ),
            Key(
                "datetime_format",
                "strftime",
                None,
                "`strptime` format of the datetime column when it is not ISO 8601.",
                "%d/%m/%Y",
            ),
            Key(
                "properties",
                "columns",
                [],
                "Columns copied into item properties (empty cells are left out).",
                ["sensor_name"],
            ),
        ),
        optional=True,
    ),
    Section(
        "collection.properties",
        "Static item properties, e.g. `platform`, `mission`, `license`, `sci:doi`, "
        "`sci:citation`. Any TOML values.",
        free_form="any",
    ),
)


ITEM_PLACEHOLDER = "{item}"


def table_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for `[collection.table]` keys that are wrong together."""
    found = []
    per_item = bool(values.get("per_item"))
    path = values.get("path")
    templated = path is not None and ITEM_PLACEHOLDER in str(path)
    if per_item and path is not None and not templated:
        found.append(("path", "with per_item, name each item's file with {item}"))
    if templated and not per_item:
        found.append(("path", "{item} is for one file per item: set table.per_item = true"))
    if values.get("key") is None and not per_item:
        found.append(("key", "required (unless table.per_item)"))
    if per_item and values.get("item_column") is not None:
        # The item's file is found from the item id: a row cannot also name the item.
        found.append(("item_column", "not with per_item (the path's {item} names the item)"))
    return found


def asset_key_problems(aliases: dict[str, str]) -> list[tuple[str, str]]:
    """(name, message) for `[collection.asset_keys]` entries whose key is not a safe id."""
    found = []
    for name, key in aliases.items():
        if not key or safe_id(key) != key:
            found.append((name, f"not an asset key: {key!r} (did you mean {safe_id(key)!r}?)"))
    return found
