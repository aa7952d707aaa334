"""The config registry: every key once, with its kind, default and help.

It drives parsing and validation (`stacsync.config.load`), the typed settings' defaults
(`stacsync.config.settings`), the docs' reference and `stacsync init` (`stacsync.config.text`).
"""

from __future__ import annotations

from typing import Any

from stacsync.config.collection_keys import COLLECTION_SECTIONS
from stacsync.config.keys import REQUIRED, Key, Section
from stacsync.core.ids import ITEM_ID_SCHEMES

CHECKSUMS = ("sha2-256", "none")
FOLLOW_SYMLINKS = ("inside", "all", "none")
WATCH_MODES = ("auto", "events", "poll")
VERIFY_BORDER = ("local", "always", "never")
STAC_API_KINDS = ("pgstac", "transactions")
DEFAULT_INCLUDE = ["*.tif", "*.tiff", "*.las", "*.laz"]

SECTIONS: tuple[Section, ...] = (
    Section(
        "source",
        "Where the data files live.",
        (
            Key(
                "path",
                "path",
                None,
                "Folder holding the data files. Give this, `irods` or `url`.",
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
                "url",
                "s3_url",
                None,
                "S3 bucket and prefix holding the data files, instead of `path` (see "
                "docs/s3.md; credentials come from the AWS environment variables, shared "
                "credentials file or profile, never from here).",
                "s3://ofo-public/drone/missions_03/",
            ),
            Key(
                "endpoint_url",
                "url",
                None,
                "With `url`: the S3 API endpoint of a store that is not AWS (path-style "
                "requests are used).",
                "https://js2.jetstream-cloud.org:8001",
            ),
            Key("region", "str", None, "With `url`: the bucket's region, if the store needs one."),
            Key(
                "anonymous",
                "bool",
                False,
                "With `url`: send unsigned requests (a public bucket; no credentials needed).",
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
                choices=FOLLOW_SYMLINKS,
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
                "Folder the catalog is written to. Give this, `irods` or `url`.",
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
                "url",
                "s3_url",
                None,
                "S3 bucket and prefix the catalog is published to, instead of `path`: each "
                "file one PUT, unchanged files never uploaded again (see docs/s3.md).",
                "s3://ofo-public/stac/",
            ),
            Key(
                "endpoint_url",
                "url",
                None,
                "With `url`: the S3 API endpoint of a store that is not AWS.",
                "https://js2.jetstream-cloud.org:8001",
            ),
            Key("region", "str", None, "With `url`: the bucket's region, if the store needs one."),
            Key(
                "public",
                "bool",
                False,
                "With `url`: let anyone read the output prefix (a bucket policy granting "
                "anonymous `s3:GetObject` on that prefix only, else `public-read` object "
                "ACLs). Nothing outside the prefix is opened.",
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
            Key(
                "item_ids",
                "choice",
                "searchable",
                "How item ids are made from the `item` group of a match. `searchable`: lower "
                "case, other characters (dots too) folded to `-` (`RGB.byte.tif` is "
                "`rgb-byte-tif`), what STAC APIs and stac-check expect; `keep-case`: capitals "
                "and dots kept (`RGB.byte.tif`), as stacsync 0.1 did. Changing it renames "
                "every item on the next pass: the old item files are removed.",
                choices=ITEM_ID_SCHEMES,
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
                "remote_threads",
                "count",
                32,
                "Files read at once from a remote source (iRODS, S3): reads there wait on the "
                "network, not the CPU.",
            ),
            Key(
                "read_overviews",
                "bool",
                True,
                "Also read each raster's smallest useful overview (a COPC cloud's coarse octree "
                "levels) to trace where the data is and draw the item's thumbnail. `false`: "
                "headers only, grid and header boxes, no thumbnails (a faster first build).",
            ),
            Key(
                "verify_border",
                "choice",
                "local",
                "Check a raster's traced footprint at full resolution along its border, so "
                "that data an overview hides (a NaN averaged into a block) is covered: `local` "
                "for files on a local or mounted disk (milliseconds), `always` (over iRODS or "
                "S3 too, where it can fetch a third of a big COG), or `never` (the overview "
                "grown by one of its pixels).",
                choices=VERIFY_BORDER,
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
        "scale",
        "Header extraction on a Dask cluster (see docs/scale.md); this process keeps the "
        "manifest and writes the catalog.",
        (
            Key(
                "scheduler",
                "str",
                None,
                "Address of a Dask scheduler (`tcp://host:8786`) to send extraction batches "
                "to; its workers read the store themselves. Unset: this machine's cores.",
                "tcp://scheduler.example.org:8786",
            ),
            Key("batch_files", "count", 50, "Files per Dask task."),
        ),
    ),
    Section(
        "stac_api",
        "Optional: also keep a STAC API true, fed by every pass with only the items that "
        "changed (see docs/stac-api.md). A down API never fails a pass: what it missed is "
        "pushed by the next one, or by `stacsync api-sync`.",
        (
            Key(
                "kind",
                "choice",
                REQUIRED,
                "`pgstac`: write to the pgstac database (`dsn`); `transactions`: a STAC API "
                "with the Transactions extension (`url`).",
                "pgstac",
                choices=STAC_API_KINDS,
            ),
            Key(
                "dsn",
                "str",
                None,
                "pgstac: libpq connection URI without a password (it comes from PGPASSWORD, "
                "~/.pgpass or a service file).",
                "postgresql://stacsync@db.example.org:5432/postgis",
            ),
            Key(
                "url", "url", None, "transactions: the API's root URL.", "https://stac.example.org"
            ),
            Key(
                "token_env",
                "str",
                None,
                "transactions: name of the environment variable holding a bearer token.",
                "STACSYNC_STAC_API_TOKEN",
            ),
            Key("batch_size", "count", 500, "Items per database batch or bulk request."),
            Key("timeout", "seconds", 30, "Seconds to connect, and per request."),
            Key(
                "retries",
                "count",
                4,
                "Attempts on a connection error or a 5xx answer before the push waits for the "
                "next pass.",
            ),
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
                choices=WATCH_MODES,
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
        "Maps local paths (or `s3://` addresses) of asset files to public URLs (first "
        "matching prefix wins; the prefix matches whole path components). Files under no "
        "prefix keep their local path (or `s3://` address).",
        (
            Key(
                "prefix",
                "abs_prefix",
                REQUIRED,
                "Local path prefix, or `s3://bucket/prefix` for objects of an S3 source.",
                "/data-store/iplant/home",
            ),
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
    *COLLECTION_SECTIONS,
)
ROOT = Section("", "The whole file.")
_BY_NAME = {s.name: s for s in SECTIONS}


def section_of(name: str) -> Section:
    """The section named `name` (dotted, e.g. `collection.table`); KeyError if none."""
    return _BY_NAME[name]


def key_of(section: str, name: str) -> Key:
    """The key `name` of section `section`; KeyError if there is none."""
    for key in _BY_NAME[section].keys:
        if key.name == name:
            return key
    raise KeyError(f"{section}.{name}")


def default_of(section: str, name: str) -> Any:
    """A key's default as written in the registry (a TOML value; REQUIRED when there is none)."""
    return key_of(section, name).default


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
