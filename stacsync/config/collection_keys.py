"""The `[[collection]]` part of the config registry: how files become items and assets.

`stacsync.config.registry` puts these sections after the run-wide ones in `SECTIONS`.
"""

from __future__ import annotations

from stacsync.config.keys import REQUIRED, Key, Section

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
        "collection.table",
        "A metadata table (`.csv` or `.gpkg` GeoPackage) with one row per join key.",
        (
            Key(
                "path",
                "source_path",
                REQUIRED,
                "The table file. Read lazily, when the first file needs it.",
                "metadata/table.csv",
            ),
            Key("layer", "str", None, "GeoPackage layer; default the first one.", "missions"),
            Key(
                "key",
                "column",
                REQUIRED,
                "Column joined to the regex `key` group (else `item`, else `asset`).",
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
