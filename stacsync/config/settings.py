"""The typed, frozen settings the rest of stacsync reads; built by `stacsync.config.load`.

A field that stands for a registry key takes its default from the registry (`_key`), so each
default is written once, in `stacsync.config.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacsync.config.kinds import typed_default
from stacsync.config.patterns import PathPattern
from stacsync.config.registry import key_of
from stacsync.core.names import url_quote


def _key(dotted: str) -> Any:
    """A field standing for the registry key `dotted` (`section.name`), defaulting as it does."""
    section, _, name = dotted.rpartition(".")
    return field(default=typed_default(key_of(section, name)), metadata={"key": dotted})


@dataclass(frozen=True, kw_only=True)
class TableConfig:
    """A metadata table (CSV or GeoPackage) joined to the files of one collection."""

    # Field order is repr order, which the pass hashes (the layout fingerprint).
    path: Path  # with `per_item`, a template holding `{item}`
    key: str | None = _key("collection.table.key")  # None: only with per_item
    item_column: str | None = _key("collection.table.item_column")
    datetime: str | None = _key("collection.table.datetime")
    datetime_format: str | None = _key("collection.table.datetime_format")
    properties: tuple[str, ...] = _key("collection.table.properties")
    layer: str | None = _key("collection.table.layer")  # None: the first GeoPackage layer
    # With an iRODS source, a table inside it: its path there, relative to the source root.
    # `path` is then a local copy, fetched before each pass when the object changed.
    source_relpath: str | None = None
    per_item: bool = _key("collection.table.per_item")  # one file per item (catalog.item_tables)


@dataclass(frozen=True, kw_only=True)
class CollectionConfig:
    """How files become the items and assets of one STAC collection."""

    # Field order is repr order, which the pass hashes (layout and render fingerprints).
    id: str
    title: str | None = _key("collection.title")
    description: str
    license: str = _key("collection.license")
    keywords: tuple[str, ...] = _key("collection.keywords")
    providers: tuple[dict, ...]
    match: PathPattern
    table: TableConfig | None
    properties: dict
    asset_titles: dict[str, str]
    crs: str | None = _key("collection.crs")
    default_datetime: str | None = _key("collection.default_datetime")
    pc_type: str = _key("collection.pc_type")
    license_url: str | None = _key("collection.license_url")  # None: an SPDX id's own page
    item_title: str = _key("collection.item_title")  # see stacsync.catalog.titles
    asset_keys: dict[str, str]  # captured `asset` name → asset key (several names, one key)


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """An S3 source or output: `[source]`/`[output]` `url` and how to reach the store.

    Credentials are never here: boto3 and GDAL find them in the AWS environment variables,
    shared credentials file or profile.
    """

    url: str  # s3://bucket/prefix/ (normalised: the prefix ends in "/")
    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None
    anonymous: bool = False  # unsigned requests (a source in a public bucket)
    public: bool = False  # an output: grant anonymous read on its prefix


@dataclass(frozen=True, kw_only=True)
class IrodsSettings:
    """The `[irods]` table: how stacsync uses an iRODS source or output."""

    anonymous: bool = _key("irods.anonymous")
    compute_checksums: bool = _key("irods.compute_checksums")
    public_read: bool = _key("irods.public_read")
    public_user: str = _key("irods.public_user")
    public_zone: str | None = _key("irods.public_zone")  # None: the output collection's zone
    dav_url: str = _key("irods.dav_url")
    clock_skew_seconds: float = _key("irods.clock_skew_seconds")

    def public_href(self, logical_path: str) -> str:
        """The anonymous web address of an iRODS path (`/iplant/home/...`)."""
        return self.dav_url + url_quote(logical_path)


@dataclass(frozen=True, kw_only=True)
class MailSettings:
    """The `[notify]` table: how to reach the SMTP server and whom to tell.

    Holds no password, only the name of the environment variable that does.
    """

    host: str
    from_addr: str  # notify.from
    to_addrs: tuple[str, ...]  # notify.to
    port: int = _key("notify.port")
    starttls: bool = _key("notify.starttls")
    username: str | None = _key("notify.username")
    auth_env: str | None = _key("notify.auth_env")
    timeout: float = _key("notify.timeout")  # seconds per connect/command
    subject_prefix: str = _key("notify.subject_prefix")
    max_listed: int = _key("notify.max_listed")  # errors listed in one mail; the rest counted

    def problems(self) -> list[str]:
        """Every mistake, as 'key: message' (the config reader adds the section)."""
        found: list[str] = []
        if not self.host:
            found.append("host: must not be empty")
        if not 0 < self.port < 65536:
            found.append(f"port: {self.port} is not a TCP port")
        for key, addrs in (("from", (self.from_addr,)), ("to", self.to_addrs)):
            if not addrs:
                found.append(f"{key}: give at least one address")
            found.extend(f"{key}: {a!r} is not an email address" for a in addrs if not _is_addr(a))
        if bool(self.username) != bool(self.auth_env):
            found.append("username, auth_env: give both (SMTP login) or neither")
        if self.username and not self.starttls and not is_loopback(self.host):
            found.append(
                "starttls: must be true when logging in to a remote server "
                "(the password would cross the network in clear)"
            )
        if self.timeout <= 0:
            found.append("timeout: must be more than 0 seconds")
        if self.max_listed < 1:
            found.append("max_listed: must be at least 1")
        return found


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (a password may then go without TLS)."""
    import ipaddress  # only when mail is configured

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_addr(value: str) -> bool:
    from email.utils import parseaddr  # only when mail is configured

    _, addr = parseaddr(value)
    return "@" in addr and " " not in addr


@dataclass(frozen=True, kw_only=True)
class StacApiSettings:
    """The `[stac_api]` table: the STAC API a pass keeps true besides the static catalog.

    Holds no password or token: libpq finds the password (PGPASSWORD, ~/.pgpass, a service
    file), and `token_env` only names the environment variable that holds the token.
    """

    kind: str  # "pgstac" (dsn) or "transactions" (url)
    dsn: str | None = _key("stac_api.dsn")
    url: str | None = _key("stac_api.url")
    token_env: str | None = _key("stac_api.token_env")
    batch_size: int = _key("stac_api.batch_size")
    timeout: float = _key("stac_api.timeout")
    retries: int = _key("stac_api.retries")

    @property
    def label(self) -> str:
        """The API as people name it (never with a password: a DSN holding one is refused)."""
        return self.dsn if self.kind == "pgstac" else str(self.url)

    def problems(self) -> list[str]:
        """Every mistake, as 'key: message' (the config reader adds the section)."""
        found: list[str] = []
        if self.kind == "pgstac" and not self.dsn:
            found.append('dsn: required with kind = "pgstac"')
        if self.kind == "transactions" and not self.url:
            found.append('url: required with kind = "transactions"')
        if self.dsn and _dsn_has_password(self.dsn):
            found.append(
                "dsn: must not hold a password (use PGPASSWORD, ~/.pgpass or a service file)"
            )
        if self.batch_size < 1:
            found.append("batch_size: must be at least 1")
        if self.timeout <= 0:
            found.append("timeout: must be more than 0 seconds")
        return found


def _dsn_has_password(dsn: str) -> bool:
    from urllib.parse import urlsplit  # only when a STAC API is configured

    if "://" in dsn:
        parts = urlsplit(dsn)
        return bool(parts.password) or "password=" in parts.query.lower()
    return "password" in {word.split("=", 1)[0].strip().lower() for word in dsn.split()}


@dataclass(frozen=True, kw_only=True)
class DaemonOptions:
    """The `[daemon]` table: how `stacsync run` notices changes (a pass does not read it)."""

    watch: str = _key("daemon.watch")
    settle_seconds: float = _key("daemon.settle_seconds")
    poll_seconds: float = _key("daemon.poll_seconds")
    reconcile_seconds: float = _key("daemon.reconcile_seconds")
    ignore: tuple[str, ...] = _key("daemon.ignore")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything one stacsync run needs to know, with paths already absolute."""

    source_path: Path
    output_path: Path
    manifest_path: Path
    workers: int  # extract.workers, 0 already turned into the number of CPUs
    collections: tuple[CollectionConfig, ...]
    config_path: Path | None
    public_url: str | None = _key("output.public_url")
    href_rewrites: tuple[tuple[str, str], ...] = ()
    include: tuple[str, ...] = _key("source.include")
    exclude: tuple[str, ...] = _key("source.exclude")
    settle_seconds: float = _key("source.settle_seconds")
    follow_symlinks: str = _key("source.follow_symlinks")
    min_files: int = _key("source.min_files")  # fewer in a full listing means it failed
    catalog_id: str = _key("catalog.id")
    catalog_title: str | None = _key("catalog.title")
    catalog_description: str = _key("catalog.description")
    item_ids: str = _key("catalog.item_ids")  # a scheme of stacsync.core.ids.item_id
    checksum: str = _key("checksum.algorithm")
    # iRODS: when set, the source/output is that collection and source_path/output_path hold
    # the same logical path (for labels and relative paths only; never walked locally).
    source_irods: str | None = _key("source.irods")
    output_irods: str | None = _key("output.irods")
    irods: IrodsSettings = field(default_factory=IrodsSettings)
    parent_catalog: str | None = _key("output.parent_catalog")
    notify: MailSettings | None = None
    read_overviews: bool = _key("extract.read_overviews")
    remote_threads: int = _key("extract.remote_threads")
    verify_border: str = _key("extract.verify_border")  # local | always | never
    scheduler: str | None = _key("scale.scheduler")  # a Dask scheduler address, or None
    batch_files: int = _key("scale.batch_files")
    geoparquet: bool = _key("output.geoparquet")  # also write items.parquet
    # S3: when set, the source/output is that bucket prefix, and source_path/output_path hold
    # /s3:/bucket/prefix (for relative paths only; never walked locally).
    source_s3: S3Settings | None = None
    output_s3: S3Settings | None = None
    daemon: DaemonOptions = field(default_factory=DaemonOptions)
    stac_api: StacApiSettings | None = None  # also keep this STAC API true

    @property
    def source_label(self) -> str:
        """The source as people name it: a folder, an iRODS collection or an s3:// URL."""
        if self.source_s3 is not None:
            return self.source_s3.url
        return self.source_irods or str(self.source_path)

    @property
    def output_label(self) -> str:
        """The output as people name it: a folder, an iRODS collection or an s3:// URL."""
        if self.output_s3 is not None:
            return self.output_s3.url
        return self.output_irods or str(self.output_path)
