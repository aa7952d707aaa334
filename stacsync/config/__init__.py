"""Read a stacsync TOML file into frozen, typed settings; every mistake is reported with its key.

One registry (`SECTIONS`) drives parsing, validation, defaults, the docs and `example_config`.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import importlib.util
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from stacsync.config.patterns import PathPattern
from stacsync.config.templates import DESCRIPTION, ITEM_TITLE, Template
from stacsync.core.errors import ConfigError
from stacsync.core.ids import safe_id
from stacsync.core.names import file_uri, needs_uri, url_quote
from stacsync.keeper.mail import MailSettings

# --------------------------------------------------------------------------------------------
# Typed settings: what the rest of stacsync reads.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableConfig:
    """A metadata table (CSV or GeoPackage) joined to the files of one collection."""

    path: Path
    key: str
    item_column: str | None
    datetime: str | None
    datetime_format: str | None
    properties: tuple[str, ...]
    layer: str | None = None  # GeoPackage layer; None = the first layer
    # With an iRODS source, a table inside it: its path there, relative to the source root.
    # `path` is then a local copy, fetched before each pass when the object changed.
    source_relpath: str | None = None


@dataclass(frozen=True)
class CollectionConfig:
    """How files become the items and assets of one STAC collection."""

    id: str
    title: str | None
    description: str
    license: str
    keywords: tuple[str, ...]
    providers: tuple[dict, ...]
    match: PathPattern
    table: TableConfig | None
    properties: dict
    asset_titles: dict[str, str]
    crs: str | None
    default_datetime: str | None
    pc_type: str
    license_url: str | None = None  # None: the SPDX page of an SPDX `license`
    item_title: str = "{id} ({date:%Y-%m-%d})"  # DEFAULT_ITEM_TITLE; see fill_item_title


@dataclass(frozen=True)
class IrodsSettings:
    """The `[irods]` table: how stacsync uses an iRODS source or output."""

    anonymous: bool = False
    compute_checksums: bool = False
    public_read: bool = True
    public_user: str = "anonymous"
    public_zone: str | None = None  # None: the output collection's own zone
    dav_url: str = "https://data.cyverse.org/dav-anon"
    clock_skew_seconds: float = 300.0

    def public_href(self, logical_path: str) -> str:
        """The anonymous web address of an iRODS path (`/iplant/home/...`)."""
        return self.dav_url + url_quote(logical_path)


@dataclass(frozen=True)
class Settings:
    """Everything one stacsync run needs to know, with paths already absolute."""

    source_path: Path
    output_path: Path
    manifest_path: Path
    public_url: str | None
    href_rewrites: tuple[tuple[str, str], ...]
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    settle_seconds: float
    catalog_id: str
    catalog_title: str | None
    catalog_description: str
    checksum: str
    workers: int
    collections: tuple[CollectionConfig, ...]
    config_path: Path | None
    # iRODS: when set, the source/output is that collection and source_path/output_path hold
    # the same logical path (for labels and relative paths only; never walked locally).
    source_irods: str | None = None
    output_irods: str | None = None
    irods: IrodsSettings = field(default_factory=IrodsSettings)
    parent_catalog: str | None = None
    notify: MailSettings | None = None
    read_overviews: bool = True  # [extract] read_overviews
    geoparquet: bool = False  # also write items.parquet beside index.geojson
    follow_symlinks: str = "inside"  # [source] follow_symlinks: inside | all | none
    min_files: int = 1  # [source] min_files: fewer in a full listing means it failed


# --------------------------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------------------------


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

# kind -> words used in the docs' "Type" column
KIND_DOCS: dict[str, str] = {
    "str": "string",
    "id": "id (letters, digits, `.`, `_`, `-`)",
    "path": "path (relative: to the config file's folder)",
    "source_path": "path (relative: to `source.path`; inside `source.irods`: fetched)",
    "url": "http(s) URL",
    "href_target": "http(s) URL or absolute path",
    "abs_prefix": "absolute path",
    "globs": "list of glob patterns",
    "strings": "list of strings",
    "seconds": "number ≥ 0 (seconds)",
    "interval": "number ≥ 0.1 (seconds)",
    "count": "integer ≥ 0",
    "choice": "string",
    "choices": "list of strings",
    "regex": "regular expression",
    "crs": "CRS (EPSG code, WKT, PROJ string)",
    "datetime": "ISO 8601 date or datetime",
    "column": "column name",
    "columns": "list of column names",
    "strftime": "strptime format",
    "bool": "true or false",
    "irods_path": "absolute iRODS path (`/zone/home/...`)",
}


@dataclass(frozen=True)
class Key:
    """One setting: its name, kind, default and the help shown in docs and generated configs."""

    name: str
    kind: str
    default: Any
    help: str
    example: Any = None  # a value for generated configs when the default is REQUIRED/None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A TOML table (`[name]`), array of tables (`[[name]]`) or free-form map of one section."""

    name: str  # dotted: "source", "collection.table"
    help: str
    keys: tuple[Key, ...] = ()
    array: bool = False  # [[name]]
    optional: bool = False  # absent -> None instead of a table of defaults
    free_form: str | None = None  # user-chosen keys; the values' kind ("str" or "any")
    min_items: int = 0

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]


PROVIDER_ROLES = ("licensor", "producer", "processor", "host")
PC_TYPES = ("lidar", "eopc", "radar", "sonar", "other")
CHECKSUMS = ("sha2-256", "none")
DEFAULT_ITEM_TITLE = "{id} ({date:%Y-%m-%d})"
MIN_INTERVAL = 0.1  # seconds: the shortest poll or reconcile period
DEFAULT_INCLUDE = ["*.tif", "*.tiff", "*.las", "*.laz"]
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

SECTIONS: tuple[Section, ...] = (
    Section(
        "source",
        "Where the data files live.",
        (
            Key(
                "path",
                "path",
                None,
                "Folder holding the data files. Give this or `irods`.",
                "/data/drone",
            ),
            Key(
                "irods",
                "irods_path",
                None,
                "iRODS collection holding the data files, instead of `path` (see docs/irods.md; "
                "the connection comes from ~/.irods or the environment, never from here).",
                "/iplant/home/shared/ofo/public",
            ),
            Key(
                "include",
                "globs",
                DEFAULT_INCLUDE,
                "Files to catalog, case-insensitive. A pattern without `/` matches the file "
                "name; one with `/` matches the whole path relative to `source.path` "
                "(`*` matches across `/` there).",
            ),
            Key(
                "exclude",
                "globs",
                [],
                "Files to skip; wins over `include`. A pattern without `/` matches any one "
                "folder or file name of the path (so `.*` skips hidden files and folders); "
                "one with `/` matches the whole relative path. The output folder, when it "
                "lies inside the source, is always skipped.",
                ["stac/*", "*.part", ".*"],
            ),
            Key(
                "settle_seconds",
                "seconds",
                0,
                "A file modified less than this many seconds ago is still being written: "
                "it waits for the next pass.",
            ),
            Key(
                "follow_symlinks",
                "choice",
                "inside",
                "Which symbolic links a local walk follows: `inside` those whose target lies "
                "inside the source folder, `all` (files and folders anywhere), or `none`. A "
                "link not followed is listed by `stacsync manifest errors` with its target. "
                "Each real folder is walked once, however many links lead to it.",
                choices=("inside", "all", "none"),
            ),
            Key(
                "min_files",
                "count",
                1,
                "A full listing with fewer matching files than this is taken as a failed "
                "listing (an unmounted mount point, a typo in the path): the pass stops with "
                "exit 1 and the catalog is kept as it is. Set 0 for a source that may be "
                "empty.",
            ),
        ),
    ),
    Section(
        "output",
        "Where the catalog JSON is written.",
        (
            Key(
                "path",
                "path",
                None,
                "Folder the catalog is written to. Give this or `irods`.",
                "/data/stac",
            ),
            Key(
                "irods",
                "irods_path",
                None,
                "iRODS collection the catalog is published to, instead of `path`: files go up "
                "under a temporary name and are renamed, and the collection is opened to "
                "anonymous read (see `[irods]`).",
                "/iplant/home/shared/ofo/public/stac",
            ),
            Key(
                "public_url",
                "url",
                None,
                "URL at which `output.path` is served. When set, catalog links are absolute "
                "URLs under it; otherwise they are relative. With `output.irods` it defaults "
                "to the collection's address under `irods.dav_url`.",
                "https://data.cyverse.org/dav-anon/iplant/home/USER/stac",
            ),
            Key(
                "parent_catalog",
                "str",
                None,
                "A parent `catalog.json` that gets a `child` link to this catalog, once (a "
                "local path, or an iRODS path when `output.irods` is set). Skipped with a "
                "warning when it cannot be written.",
                "/iplant/home/shared/ofo/public/catalog.json",
            ),
            Key(
                "geoparquet",
                "bool",
                False,
                "Also write `items.parquet`, every item in one stac-geoparquet file, whenever "
                "`index.geojson` is written. Needs `pip install 'stacsync[parquet]'`.",
            ),
        ),
    ),
    Section(
        "manifest",
        "The SQLite database that remembers every file.",
        (Key("path", "path", "stacsync.db", "SQLite manifest file."),),
    ),
    Section(
        "catalog",
        "The root catalog.",
        (
            Key("id", "id", "stacsync", "Id of the root catalog."),
            Key("title", "str", None, "Title of the root catalog.", "Drone products"),
            Key(
                "description",
                "str",
                "STAC catalog kept up to date by stacsync.",
                "Description of the root catalog.",
            ),
        ),
    ),
    Section(
        "checksum",
        "File checksums (tell a touched file from a modified one; fill `file:checksum`).",
        (
            Key(
                "algorithm",
                "choice",
                "sha2-256",
                "`sha2-256` (the store's own checksum is used when it has one), or `none`: "
                "then a changed mtime means re-reading the header.",
                choices=CHECKSUMS,
            ),
        ),
    ),
    Section(
        "extract",
        "Header extraction.",
        (
            Key("workers", "count", 0, "Parallel workers; 0 means the number of CPUs."),
            Key(
                "read_overviews",
                "bool",
                True,
                "Also read each raster's smallest useful overview (a COPC cloud's coarse octree "
                "levels) to trace where the data is and draw the item's thumbnail. `false`: "
                "headers only, grid and header boxes, no thumbnails (a faster first build).",
            ),
        ),
    ),
    Section(
        "irods",
        "How an iRODS source or output is used (only read when `source.irods` or "
        "`output.irods` is set).",
        (
            Key(
                "anonymous",
                "bool",
                False,
                "Read the source as user `anonymous` (public collections; no password). The "
                "output always needs a real account.",
            ),
            Key(
                "compute_checksums",
                "bool",
                False,
                "Ask the server to compute the checksum of an object that has none, rather "
                "than reading its bytes (costs the server a full read of each such object).",
            ),
            Key(
                "public_read",
                "bool",
                True,
                "Give `public_user` read access to the output collection, recursively and "
                "inherited by files written later; never to the source or any parent.",
            ),
            Key("public_user", "str", "anonymous", "The user that public read is given to."),
            Key(
                "public_zone",
                "str",
                None,
                "Zone of `public_user`; default the output collection's zone.",
                "iplant",
            ),
            Key(
                "dav_url",
                "url",
                "https://data.cyverse.org/dav-anon",
                "Web address that serves iRODS paths anonymously: `/iplant/home/x` is "
                "published as `<dav_url>/iplant/home/x` (asset and catalog hrefs).",
            ),
            Key(
                "clock_skew_seconds",
                "seconds",
                300,
                "Polls ask for objects modified since the last poll minus this margin, so a "
                "server clock behind ours loses nothing.",
            ),
        ),
    ),
    Section(
        "notify",
        "Optional email to the catalog's keeper (SMTP) when a collection is first published "
        "and when files newly go into error. Sending never fails a pass.",
        (
            Key("host", "str", REQUIRED, "SMTP server.", "smtp.example.org"),
            Key("port", "count", 25, "SMTP port."),
            Key("from", "str", REQUIRED, "Sender address.", "stacsync@example.org"),
            Key("to", "strings", REQUIRED, "Recipients.", ["keeper@example.org"]),
            Key(
                "starttls",
                "bool",
                False,
                "Upgrade the connection with STARTTLS; required to log in to a server that is "
                "not this machine.",
            ),
            Key("username", "str", None, "SMTP login (with `auth_env`).", "stacsync"),
            Key(
                "auth_env",
                "str",
                None,
                "Name of the environment variable holding the SMTP password (the password "
                "itself never goes in this file).",
                "STACSYNC_SMTP_PASSWORD",
            ),
            Key("timeout", "seconds", 10, "Seconds per SMTP step; a pass waits at most this."),
            Key("subject_prefix", "str", "[stacsync]", "Start of every subject."),
            Key("max_listed", "count", 20, "Errors listed in one mail; the rest are counted."),
        ),
        optional=True,
    ),
    Section(
        "daemon",
        "Only read by `stacsync run` (see docs/daemon.md); `rescan` ignores it.",
        (
            Key(
                "watch",
                "choice",
                "auto",
                "`events` (inotify), `poll` (stat-diff every `poll_seconds`), or `auto`: poll "
                "on FUSE/NFS/SMB mounts, which send no events for changes made elsewhere.",
                choices=("auto", "events", "poll"),
            ),
            Key(
                "settle_seconds",
                "seconds",
                30,
                "A changed file must keep the same size and mtime this long before it is read.",
            ),
            Key("poll_seconds", "interval", 120, "Seconds between stat-diff passes when polling."),
            Key(
                "reconcile_seconds",
                "interval",
                3600,
                "Seconds between full passes while following events (events can be lost).",
            ),
            Key(
                "ignore",
                "globs",
                [".*", "*.part", "*~", "*.tmp", "*.crdownload"],
                "File names never taken as change hints (writers' temporary files).",
            ),
        ),
    ),
    Section(
        "href_rewrite",
        "Maps local paths of asset files to public URLs (first matching prefix wins; the "
        "prefix matches whole path components). Files under no prefix keep their local path.",
        (
            Key("prefix", "abs_prefix", REQUIRED, "Local path prefix.", "/data-store/iplant/home"),
            Key(
                "to",
                "href_target",
                REQUIRED,
                "What replaces the prefix.",
                "https://data.cyverse.org/dav-anon/iplant/home",
            ),
        ),
        array=True,
    ),
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
ROOT = Section("", "The whole file.")
_BY_NAME = {s.name: s for s in SECTIONS}


def registry_keys() -> list[str]:
    """Dotted name of every registered key and section, e.g. `collection.table.key`."""
    names = []
    for section in SECTIONS:
        names.append(section.name)
        names.extend(f"{section.name}.{key.name}" for key in section.keys)
    return names


def child_sections(section: Section) -> list[Section]:
    prefix = f"{section.name}." if section.name else ""
    return [
        s
        for s in SECTIONS
        if s.name.startswith(prefix) and "." not in s.name[len(prefix) :] and s is not section
    ]


# --------------------------------------------------------------------------------------------
# Converters: one per kind; raise ValueError with a message that follows "<key>: ".
# --------------------------------------------------------------------------------------------

_TOML_TYPE = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a table",
    datetime: "a datetime",
    date: "a date",
}


def _type_name(value: Any) -> str:
    return _TOML_TYPE.get(type(value), type(value).__name__)


def _expect(value: Any, types: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise ValueError(f"must be {what}, got {_type_name(value)}")
    if not isinstance(value, types):
        raise ValueError(f"must be {what}, got {_type_name(value)}")


def _str(value: Any, key: Key, ctx: _Context) -> str:
    _expect(value, (str,), "a string")
    return value


def _nonempty(value: Any, key: Key, ctx: _Context) -> str:
    _expect(value, (str,), "a string")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _strings(value: Any, key: Key, ctx: _Context) -> tuple[str, ...]:
    _expect(value, (list,), "a list of strings")
    for item in value:
        _expect(item, (str,), "a list of strings")
    return tuple(value)


def _globs(value: Any, key: Key, ctx: _Context) -> tuple[str, ...]:
    patterns = _strings(value, key, ctx)
    if any(not p.strip() for p in patterns):
        raise ValueError("patterns must not be empty")
    # a pattern is anchored at the source root anyway; a leading "/" or "./" adds nothing
    return tuple(p.lstrip("/") if "/" in p else p for p in (p.removeprefix("./") for p in patterns))


def _path(value: Any, key: Key, ctx: _Context) -> Path:
    return _resolve(Path(os.path.expanduser(_nonempty(value, key, ctx))), ctx.config_dir)


def _source_path(value: Any, key: Key, ctx: _Context) -> Path:
    return _resolve(Path(os.path.expanduser(_nonempty(value, key, ctx))), ctx.source_dir)


def _bool(value: Any, key: Key, ctx: _Context) -> bool:
    _expect(value, (bool,), "true or false")
    return value


def _irods_path(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    parts = PurePosixPath(text).parts
    if not text.startswith("/") or len(parts) < 3:
        raise ValueError("must be an absolute iRODS path like /zone/home/user/folder")
    if ".." in parts:
        raise ValueError("must not contain '..'")
    return str(PurePosixPath(text))


def _resolve(path: Path, base: Path) -> Path:
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def check_url(value: str) -> str:
    """Return an http(s) URL without its trailing `/`; ValueError when it is not one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must start with http:// or https://")
    if parts.username or parts.password:
        raise ValueError(
            "must not contain a user name or password (credentials stay out of configs)"
        )
    return value.rstrip("/")


def _url(value: Any, key: Key, ctx: _Context) -> str:
    return check_url(_nonempty(value, key, ctx))


def _href_target(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    if text.startswith("/"):
        return text.rstrip("/") or "/"
    try:
        return check_url(text)
    except ValueError:
        raise ValueError("must be an http(s) URL or an absolute path") from None


def _abs_prefix(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    if not text.startswith("/"):
        raise ValueError(f"must be an absolute path (start with /), got {text!r}")
    return text.rstrip("/") or "/"


def _seconds(value: Any, key: Key, ctx: _Context) -> float:
    _expect(value, (int, float), "a number")
    if value < 0:
        raise ValueError(f"must be ≥ 0, got {value}")
    return float(value)


def _interval(value: Any, key: Key, ctx: _Context) -> float:
    # A period the daemon sleeps: 0 would spin (the same rule as daemon._option_value).
    _expect(value, (int, float), "a number")
    if value < MIN_INTERVAL:
        raise ValueError(f"must be ≥ {MIN_INTERVAL:g}, got {value}")
    return float(value)


def _count(value: Any, key: Key, ctx: _Context) -> int:
    _expect(value, (int,), "an integer")
    if value < 0:
        raise ValueError(f"must be ≥ 0, got {value}")
    return value


def _choice(value: Any, key: Key, ctx: _Context) -> str:
    _expect(value, (str,), "a string")
    if value not in key.choices:
        raise ValueError(f"must be one of {', '.join(key.choices)}, got {value!r}")
    return value


def _choices(value: Any, key: Key, ctx: _Context) -> tuple[str, ...]:
    values = _strings(value, key, ctx)
    for item in values:
        if item not in key.choices:
            raise ValueError(f"must be among {', '.join(key.choices)}, got {item!r}")
    return values


def _id(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    if safe_id(text) != text:
        hint = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
        hint = hint if hint and safe_id(hint) == hint else safe_id(text)
        raise ValueError(
            f"{text!r} is not a safe id (letters, digits, '.', '_', '-'); try {hint!r}"
        )
    return text


def _regex(value: Any, key: Key, ctx: _Context) -> PathPattern:
    return PathPattern(_nonempty(value, key, ctx))  # ValueError names what RE2 refuses


def _crs(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    import pyproj  # only configs that name a CRS pay for the import

    try:
        pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise ValueError(f"not a CRS pyproj understands: {exc}") from None
    return text


def _datetime(value: Any, key: Key, ctx: _Context) -> str:
    _expect(value, (str, datetime, date), "an ISO 8601 date or datetime")
    return to_utc_iso(value)


def _strftime(value: Any, key: Key, ctx: _Context) -> str:
    text = _nonempty(value, key, ctx)
    if "%" not in text:
        raise ValueError(f"{text!r} has no % directive; see Python's strptime formats")
    return text


def _any(value: Any, key: Key, ctx: _Context) -> Any:
    return _jsonable(value)


_CONVERT: dict[str, Callable[[Any, Key, _Context], Any]] = {
    "str": _str,
    "id": _id,
    "path": _path,
    "source_path": _source_path,
    "url": _url,
    "href_target": _href_target,
    "abs_prefix": _abs_prefix,
    "globs": _globs,
    "strings": _strings,
    "seconds": _seconds,
    "interval": _interval,
    "count": _count,
    "choice": _choice,
    "choices": _choices,
    "regex": _regex,
    "crs": _crs,
    "datetime": _datetime,
    "column": _nonempty,
    "columns": _strings,
    "strftime": _strftime,
    "any": _any,
    "bool": _bool,
    "irods_path": _irods_path,
}


def _jsonable(value: Any) -> Any:
    """TOML values as JSON values: datetimes become ISO strings."""
    if isinstance(value, datetime | date):
        return to_utc_iso(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Dates.
# --------------------------------------------------------------------------------------------

# unambiguous non-ISO forms only; anything day/month-ambiguous needs table.datetime_format
_EXTRA_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y:%m:%d %H:%M:%S", "%Y%m%d")


def to_utc_iso(value: Any, fmt: str | None = None) -> str:
    """An ISO 8601 UTC string (`...Z`) from a date, datetime or string; ValueError otherwise.

    A date becomes midnight UTC, a naive datetime is taken as UTC, an aware one is converted.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parse_datetime_text(value.strip(), fmt)
    else:
        raise ValueError(f"not a date or datetime: {value!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def _parse_datetime_text(text: str, fmt: str | None) -> datetime:
    formats = (fmt,) if fmt else _EXTRA_FORMATS
    if not fmt:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    for candidate in formats:
        try:
            return datetime.strptime(text, candidate)
        except ValueError:
            continue
    hint = f" with format {fmt!r}" if fmt else " (expected ISO 8601, e.g. 2019-05-19)"
    raise ValueError(f"cannot read {text!r} as a date{hint}")


# --------------------------------------------------------------------------------------------
# Reading: the registry walked over the parsed TOML.
# --------------------------------------------------------------------------------------------

_SECRET = re.compile(
    r"pass(word|wd|phrase)?$|^pw$|^pwd$|password|passwd|token|secret|api[-_]?key|credential"
    r"|private[-_]?key|irods[-_]?auth",
    re.IGNORECASE,
)
_SECRET_HELP = (
    "credentials do not belong in the config file; use ~/.irods/irods_environment.json "
    "(iinit) or environment variables"
)


@dataclass
class _Context:
    config_dir: Path
    source_dir: Path
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _find_secrets(value: Any, where: str) -> Iterator[str]:
    """Every key anywhere in the document that looks like it holds a credential."""
    if isinstance(value, dict):
        for name, child in value.items():
            path = _join(where, name)
            if _SECRET.search(name):
                yield path
            else:
                yield from _find_secrets(child, path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _find_secrets(child, f"{where}[{index}]")


def _unknown(name: str, candidates: list[str]) -> str:
    import difflib  # only for a mistake: start-up does not pay for it

    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}"


def _read_table(raw: Any, section: Section, where: str, ctx: _Context) -> dict[str, Any]:
    """Check one TOML table against its section; return converted values (children nested)."""
    if not isinstance(raw, dict):
        shape = f"[[{section.name}]]" if section.array else f"[{section.name}]"
        ctx.error(where, f"must be a table ({shape}), got {_type_name(raw)}")
        return _empty_values(section)
    keys = {k.name: k for k in section.keys}
    children = {c.short: c for c in child_sections(section)}
    for name in raw:
        if name not in keys and name not in children and not _SECRET.search(name):
            ctx.error(_join(where, name), _unknown(name, [*keys, *children]))
    values = {k.name: _read_key(raw, k, where, ctx) for k in section.keys}
    if section.name == "source" and isinstance(values.get("path"), Path):
        ctx.source_dir = values["path"]  # table paths, read later, resolve against it
    elif section.name == "source" and isinstance(values.get("irods"), str):
        ctx.source_dir = Path(values["irods"])  # a table there is fetched: see _fetched_tables
    for short, child in children.items():
        values[short] = _read_child(raw.get(short), child, _join(where, short), ctx)
    return values


def _empty_values(section: Section) -> dict[str, Any]:
    """Values of a section that could not be read, so building can go on to report more."""
    values: dict[str, Any] = {k.name: None for k in section.keys}
    for child in child_sections(section):
        values[child.short] = [] if child.array else ({} if child.free_form else None)
    return values


def _read_key(raw: dict, key: Key, where: str, ctx: _Context) -> Any:
    if key.name not in raw:
        if key.required:
            ctx.error(_join(where, key.name), "required")
            return None
        raw_value = key.default
    else:
        raw_value = raw[key.name]
    if raw_value is None:
        return None
    try:
        return _CONVERT[key.kind](raw_value, key, ctx)
    except ValueError as exc:
        ctx.error(_join(where, key.name), str(exc))
        return None


def _read_child(raw: Any, section: Section, where: str, ctx: _Context) -> Any:
    if section.free_form:
        return _read_map(raw, section, where, ctx)
    if section.array:
        return _read_array(raw, section, where, ctx)
    if raw is None:
        return None if section.optional else _read_table({}, section, where, ctx)
    return _read_table(raw, section, where, ctx)


def _read_array(raw: Any, section: Section, where: str, ctx: _Context) -> list[dict[str, Any]]:
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        ctx.error(where, f"must be an array of tables ([[{section.name}]]), got {_type_name(raw)}")
        return []
    if len(raw) < section.min_items:
        ctx.error(where, f"at least {section.min_items} [[{section.name}]] block is required")
    return [_read_table(item, section, f"{where}[{i}]", ctx) for i, item in enumerate(raw)]


def _read_map(raw: Any, section: Section, where: str, ctx: _Context) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.error(where, f"must be a table ([{section.name}]), got {_type_name(raw)}")
        return {}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if _SECRET.search(name):
            continue
        try:
            values[name] = _CONVERT[section.free_form or "any"](value, Key(name, "", None, ""), ctx)
        except ValueError as exc:
            ctx.error(_join(where, name), str(exc))
    return values


# --------------------------------------------------------------------------------------------
# Building the typed settings from the checked values.
# --------------------------------------------------------------------------------------------

_GROUPS = {"item", "asset", "key"}


def _build_table(values: dict[str, Any] | None) -> TableConfig | None:
    if values is None:
        return None
    return TableConfig(
        path=values["path"],
        key=values["key"],
        item_column=values["item_column"],
        datetime=values["datetime"],
        datetime_format=values["datetime_format"],
        properties=tuple(values["properties"] or ()),
        layer=values["layer"],
    )


def _check_match(values: dict[str, Any], where: str, ctx: _Context) -> None:
    pattern: PathPattern | None = values["match"]
    if pattern is None:
        return
    groups = set(pattern.groupindex)
    table = values["table"]
    for name in sorted(groups - _GROUPS):
        ctx.error(f"{where}.match", f"unknown group {name!r} (groups: item, asset, key)")
    item_column = table and table.get("item_column")
    if "item" not in groups and not item_column:
        ctx.error(f"{where}.match", "needs an (?P<item>...) group, or set table.item_column")
    if table and not groups & _GROUPS:
        ctx.error(f"{where}.match", "needs a (?P<key>...) group to join table.key")


def _check_asset_titles(titles: dict[str, str], where: str, ctx: _Context) -> None:
    for name in titles:
        if safe_id(name) != name:
            ctx.error(
                f"{where}.asset_titles.{name}", f"not an asset key; did you mean {safe_id(name)!r}?"
            )


DESCRIPTION_FIELDS = DESCRIPTION.names
ITEM_TITLE_FIELDS = (*ITEM_TITLE.names, "properties")


def fill_item_title(
    template: str, item_id: str, when: str, collection: str, properties: Mapping[str, Any]
) -> str:
    """An item's title from its collection's `item_title` template (see stacsync.config.templates).

    Checked at config time; a template that never was (settings built in code) and cannot be
    parsed is used as written, like a description.
    """
    day = datetime.fromisoformat(when.replace("Z", "+00:00"))
    values = {"id": item_id, "date": day, "collection": collection, "properties": properties}
    try:
        template_ = Template.parse(template, ITEM_TITLE)
    except ValueError:
        template_ = Template.literal(template, ITEM_TITLE)
    return template_.fill(values)  # bounded; a blank property leaves no double space


def check_item_title(text: str) -> None:
    """ValueError unless `text` is an item title template stacsync can fill in."""
    Template.parse(text, ITEM_TITLE)


def check_description(text: str) -> None:
    """ValueError unless `text` is a description template stacsync can fill in."""
    Template.parse(text, DESCRIPTION)


def _check_description(text: str | None, where: str, ctx: _Context) -> None:
    if text is None:
        return
    try:
        check_description(text)
    except ValueError as exc:
        ctx.error(f"{where}.description", str(exc))


def _literal_braces(text: str) -> str:
    # A title standing in for the description is text, not a template.
    return text.replace("{", "{{").replace("}", "}}")


def _check_properties(properties: dict[str, Any], where: str, ctx: _Context) -> None:
    if "datetime" in properties:
        ctx.error(f"{where}.properties.datetime", "set default_datetime or table.datetime instead")


def _build_collection(values: dict[str, Any], where: str, ctx: _Context) -> CollectionConfig:
    _check_match(values, where, ctx)
    _check_asset_titles(values["asset_titles"], where, ctx)
    _check_properties(values["properties"], where, ctx)
    _check_description(values["description"], where, ctx)
    if values["item_title"] is not None:
        try:
            check_item_title(values["item_title"])
        except ValueError as exc:
            ctx.error(f"{where}.item_title", str(exc))
    providers = tuple(
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items() if v not in (None, ())}
        for p in values["providers"]
    )
    return CollectionConfig(
        id=values["id"],
        title=values["title"],
        description=values["description"] or _literal_braces(values["title"] or values["id"] or ""),
        license=values["license"],
        keywords=values["keywords"],
        providers=providers,
        match=values["match"],
        table=_build_table(values["table"]),
        properties=values["properties"],
        asset_titles={**DEFAULT_ASSET_TITLES, **values["asset_titles"]},
        crs=values["crs"],
        default_datetime=values["default_datetime"],
        pc_type=values["pc_type"],
        license_url=values["license_url"],
        item_title=values["item_title"] or DEFAULT_ITEM_TITLE,
    )


def _build_collections(items: list[dict[str, Any]], ctx: _Context) -> tuple[CollectionConfig, ...]:
    built = []
    first_seen: dict[str, int] = {}
    for index, values in enumerate(items):
        where = f"collection[{index}]"
        built.append(_build_collection(values, where, ctx))
        cid = values["id"]
        if cid in first_seen:
            ctx.error(
                f"{where}.id",
                f"duplicate collection id {cid!r} (also collection[{first_seen[cid]}])",
            )
        elif cid:
            first_seen[cid] = index
    return tuple(built)


def _output_exclude(source: Path, output: Path) -> tuple[str, ...]:
    """An exclude pattern for the output folder when it lies inside the source."""
    try:
        rel = output.relative_to(source)
    except ValueError:
        return ()
    return (glob.escape(rel.as_posix()) + "/*",) if rel.parts else ()


def _with_output_excluded(
    exclude: tuple[str, ...], source: Path | None, output: Path | None
) -> tuple[str, ...]:
    if source is None or output is None:
        return exclude
    extra = [p for p in _output_exclude(source, output) if p not in exclude]
    return (*exclude, *extra)


def _workers(count: int) -> int:
    return count or os.cpu_count() or 1


def _build_settings(values: dict[str, Any], config_path: Path | None, ctx: _Context) -> Settings:
    source, output = values["source"], values["output"]
    source_path = _one_of(source, "source", ctx)
    output_path = _one_of(output, "output", ctx)
    if source_path is not None and source_path == output_path:
        ctx.error("output.path", "must not be the source folder itself")
    irods = _build_irods(values["irods"], output["irods"])
    public_url = output["public_url"]
    if public_url is None and output["irods"]:
        public_url = irods.public_href(output["irods"])
    collections = _build_collections(values["collection"], ctx)
    if source["irods"] is not None:
        collections = _fetched_tables(collections, source["irods"], values["manifest"]["path"])
    notify = _build_notify(values["notify"], ctx)
    if output["geoparquet"] and not _geoparquet_installed():
        ctx.error(
            "output.geoparquet",
            "needs the stac-geoparquet package, which is not installed: "
            "pip install 'stacsync[parquet]'",
        )
    if ctx.errors:
        raise ConfigError("\n".join(ctx.errors))
    return Settings(
        source_path=source_path,
        output_path=output_path,
        manifest_path=values["manifest"]["path"],
        public_url=public_url,
        href_rewrites=tuple((r["prefix"], r["to"]) for r in values["href_rewrite"]),
        include=source["include"],
        exclude=_with_output_excluded(source["exclude"], source_path, output_path),
        settle_seconds=source["settle_seconds"],
        follow_symlinks=source["follow_symlinks"],
        min_files=source["min_files"],
        catalog_id=values["catalog"]["id"],
        catalog_title=values["catalog"]["title"],
        catalog_description=values["catalog"]["description"],
        checksum=values["checksum"]["algorithm"],
        workers=_workers(values["extract"]["workers"]),
        collections=collections,
        config_path=config_path,
        source_irods=source["irods"],
        output_irods=output["irods"],
        irods=irods,
        parent_catalog=output["parent_catalog"],
        notify=notify,
        read_overviews=values["extract"]["read_overviews"],
        geoparquet=bool(output["geoparquet"]),
    )


def _geoparquet_installed() -> bool:
    # find_spec, not import: pyarrow costs every start-up far more than this check.
    try:
        return all(importlib.util.find_spec(name) for name in ("stac_geoparquet", "pyarrow"))
    except (ImportError, ValueError):
        return False


def _build_notify(values: dict[str, Any] | None, ctx: _Context) -> MailSettings | None:
    if values is None or any(values[k] is None for k in ("host", "from", "to")):
        return None  # absent, or a required key already reported
    mail = MailSettings(
        host=values["host"],
        from_addr=values["from"],
        to_addrs=values["to"],
        port=values["port"],
        starttls=values["starttls"],
        username=values["username"],
        auth_env=values["auth_env"],
        timeout=values["timeout"],
        subject_prefix=values["subject_prefix"],
        max_listed=values["max_listed"],
    )
    for problem in mail.problems():
        ctx.errors.append(f"notify.{problem}")
    return mail


def _fetched_tables(
    collections: tuple[CollectionConfig, ...], root: str, manifest: Path
) -> tuple[CollectionConfig, ...]:
    """Tables inside an iRODS source are read from local copies kept beside the manifest."""
    cache = manifest.parent / f"{manifest.name}.tables"
    out = []
    for c in collections:
        table = c.table
        if table is not None and PurePosixPath(table.path).is_relative_to(root):
            rel = PurePosixPath(table.path).relative_to(root).as_posix()
            table = replace(table, path=cache / rel, source_relpath=rel)
            c = replace(c, table=table)
        out.append(c)
    return tuple(out)


def _one_of(values: dict[str, Any], where: str, ctx: _Context) -> Path | None:
    """The folder or iRODS collection a `[source]`/`[output]` table names (exactly one)."""
    local, irods = values["path"], values["irods"]
    if local is not None and irods is not None:
        ctx.error(f"{where}.irods", f"give either {where}.path or {where}.irods, not both")
    elif local is None and irods is None:
        ctx.error(f"{where}.path", f"required (or {where}.irods for an iRODS collection)")
    return local if local is not None else (Path(irods) if irods is not None else None)


def _build_irods(values: dict[str, Any], output_irods: str | None) -> IrodsSettings:
    defaults = IrodsSettings()
    zone = values["public_zone"]
    if zone is None and output_irods:
        zone = PurePosixPath(output_irods).parts[1]
    return IrodsSettings(
        anonymous=values["anonymous"],
        compute_checksums=values["compute_checksums"],
        public_read=values["public_read"],
        public_user=values["public_user"] or defaults.public_user,
        public_zone=zone,
        dav_url=values["dav_url"] or defaults.dav_url,
        clock_skew_seconds=values["clock_skew_seconds"],
    )


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed config document; ConfigError for a missing, unreadable or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def settings_from_dict(
    document: dict[str, Any], base_dir: Path, config_path: Path | None = None
) -> Settings:
    """Check a parsed TOML document and build Settings; relative paths resolve against base_dir."""
    ctx = _Context(config_dir=base_dir, source_dir=base_dir)
    for where in _find_secrets(document, ""):
        ctx.error(where, _SECRET_HELP)
    values = _read_table(document, ROOT, "", ctx)
    return _build_settings(values, config_path, ctx)


def load_settings(path: Path) -> Settings:
    """Read and check a TOML config file; raise ConfigError naming every wrong key."""
    path = Path(os.path.expanduser(path)).absolute()
    document = read_toml(path)
    return settings_from_dict(document, path.parent, path)


def quick_settings(
    source: Path,
    output: Path,
    manifest: Path,
    public_url: str | None = None,
    min_files: int | None = None,
) -> Settings:
    """Settings for the no-config form: one collection, one item per file, defaults elsewhere."""
    source, output, manifest = (
        Path(os.path.expanduser(p)).absolute() for p in (source, output, manifest)
    )
    if public_url is not None:
        try:
            public_url = check_url(public_url)
        except ValueError as exc:
            raise ConfigError(f"public_url: {exc}") from None
    collection = CollectionConfig(
        id=safe_id(source.name or "files"),
        title=source.name or None,
        description=_literal_braces(f"Files under {source}"),
        license="other",
        keywords=(),
        providers=(),
        match=PathPattern(r"^(?P<item>.+)$"),
        table=None,
        properties={},
        asset_titles=dict(DEFAULT_ASSET_TITLES),
        crs=None,
        default_datetime=None,
        pc_type="lidar",
    )
    return Settings(
        source_path=source,
        output_path=output,
        manifest_path=manifest,
        public_url=public_url,
        href_rewrites=(),
        include=tuple(DEFAULT_INCLUDE),
        exclude=_output_exclude(source, output),
        settle_seconds=0.0,
        catalog_id="stacsync",
        catalog_title=None,
        catalog_description=_default_of("catalog", "description"),
        checksum="sha2-256",
        workers=_workers(0),
        collections=(collection,),
        config_path=None,
        min_files=_default_of("source", "min_files") if min_files is None else min_files,
    )


def _default_of(section: str, name: str) -> Any:
    return next(k.default for k in _BY_NAME[section].keys if k.name == name)


# --------------------------------------------------------------------------------------------
# Matching and hrefs: called once per file, so the patterns are compiled once.
# --------------------------------------------------------------------------------------------


def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One regex for the name patterns and one for the path patterns."""
    names = [fnmatch.translate(p) for p in patterns if "/" not in p]
    paths = [fnmatch.translate(p) for p in patterns if "/" in p]
    return (
        re.compile("|".join(names), re.IGNORECASE) if names else None,
        re.compile("|".join(paths), re.IGNORECASE) if paths else None,
    )


@functools.lru_cache(maxsize=32)
def _matcher(include: tuple[str, ...], exclude: tuple[str, ...]) -> Callable[[str], bool]:
    include_name, include_path = _compile(include)
    exclude_part, exclude_path = _compile(exclude)

    def included(relpath: str) -> bool:
        if exclude_path is not None and exclude_path.match(relpath):
            return False
        parts = relpath.split("/")
        if exclude_part is not None and any(exclude_part.match(p) for p in parts):
            return False
        if include_name is not None and include_name.match(parts[-1]):
            return True
        return include_path is not None and include_path.match(relpath) is not None

    return included


def is_included(settings: Settings, relpath: str) -> bool:
    """Whether a path relative to the source is to be cataloged (exclude wins over include)."""
    return _matcher(settings.include, settings.exclude)(relpath.lstrip("/"))


def rewrite_href(settings: Settings, absolute_path: str) -> str:
    """The public href of a source file: first `href_rewrite` prefix on a component boundary.

    With an iRODS source a path under no prefix is published under `irods.dav_url`.
    """
    for prefix, target in settings.href_rewrites:
        if prefix == "/":
            rest = absolute_path
        elif absolute_path == prefix or absolute_path.startswith(prefix + "/"):
            rest = absolute_path[len(prefix) :]
        else:
            continue
        if target.startswith("/"):
            return _local_href((target.rstrip("/") + rest) or "/")
        return target + url_quote(rest)
    if settings.source_irods is not None:
        return settings.irods.public_href(absolute_path)
    return _local_href(absolute_path)


def _local_href(path: str) -> str:
    # Written as it is where it can be, as readers expect; a name with bytes that are not
    # UTF-8 or with control characters cannot be, so it becomes a %-escaped file: URI.
    return file_uri(path) if needs_uri(path) else path
