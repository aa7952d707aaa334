"""Load a stacsync config: read the TOML, check it against the registry, build the Settings.

Every mistake is reported with its key, all at once, in one ConfigError.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from stacsync.config.collection_keys import (
    DEFAULT_ASSET_TITLES,
    DEFAULT_ITEM_TITLE,
    asset_key_problems,
    table_problems,
)
from stacsync.config.kinds import ReadContext, check_url
from stacsync.config.patterns import PathPattern
from stacsync.config.read import read_document
from stacsync.config.registry import default_of
from stacsync.config.settings import (
    CollectionConfig,
    DaemonOptions,
    IrodsSettings,
    MailSettings,
    S3Settings,
    Settings,
    StacApiSettings,
    TableConfig,
)
from stacsync.config.templates import check_description, check_item_title
from stacsync.core.errors import ConfigError
from stacsync.core.ids import safe_id
from stacsync.core.s3url import parse_s3_url


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
    ctx = ReadContext(config_dir=base_dir, source_dir=base_dir)
    values = read_document(document, ctx)
    return _build_settings(values, config_path, ctx)


def load_settings(path: Path, daemon_overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and check a TOML config file; raise ConfigError naming every wrong key.

    `daemon_overrides` (`stacsync run` options, by `[daemon]` key name; None: not given)
    replace the file's `[daemon]` values and are checked as they are.
    """
    path = Path(os.path.expanduser(path)).absolute()
    document = read_toml(path)
    if daemon_overrides:
        document = _overridden(document, "daemon", daemon_overrides)
    return settings_from_dict(document, path.parent, path)


def _overridden(document: dict[str, Any], name: str, overrides: Mapping[str, Any]) -> dict:
    table = document.get(name, {})
    if not isinstance(table, dict):
        return document  # reported as it is: "daemon: must be a table"
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    return {**document, name: {**table, **{k: v for k, v in given.items() if v is not None}}}


def quick_settings(
    source: Path | str,
    output: Path,
    manifest: Path,
    public_url: str | None = None,
    min_files: int | None = None,
    *,
    endpoint_url: str | None = None,
    anonymous: bool = False,
) -> Settings:
    """Settings for the no-config form: one collection, one item per file, defaults elsewhere.

    `source` is a folder, or an `s3://bucket/prefix/` URL (then `endpoint_url` and
    `anonymous` say how to reach the store).
    """
    s3 = _quick_s3(str(source), endpoint_url, anonymous)
    if s3 is not None:
        location = parse_s3_url(s3.url)
        name = PurePosixPath(location.prefix).name or location.bucket
        source = Path("/s3:") / location.bucket / location.prefix
    elif endpoint_url is not None or anonymous:
        raise ConfigError("--endpoint-url and --anonymous are for an s3:// source")
    source, output, manifest = (
        Path(os.path.expanduser(p)).absolute() for p in (source, output, manifest)
    )
    if s3 is None:
        name = source.name
    if public_url is not None:
        try:
            public_url = check_url(public_url)
        except ValueError as exc:
            raise ConfigError(f"public_url: {exc}") from None
    collection = CollectionConfig(
        id=safe_id(name or "files"),
        title=name or None,
        description=_literal_braces(f"Files under {s3.url if s3 else source}"),
        providers=(),
        match=PathPattern(r"^(?P<item>.+)$"),
        table=None,
        properties={},
        asset_titles=dict(DEFAULT_ASSET_TITLES),
        asset_keys={},
    )
    given = {} if min_files is None else {"min_files": min_files}
    return Settings(  # every setting not given here takes the registry's default
        source_path=source,
        output_path=output,
        manifest_path=manifest,
        public_url=public_url,
        exclude=_with_output_excluded(Settings.exclude, source, output),
        workers=_workers(default_of("extract", "workers")),
        collections=(collection,),
        config_path=None,
        source_s3=s3,
        **given,
    )


def _quick_s3(source: str, endpoint_url: str | None, anonymous: bool) -> S3Settings | None:
    """The S3 settings of a quick-form source given as `s3://…`; ConfigError naming the flag."""
    if not source.startswith("s3:"):
        return None
    try:
        url = parse_s3_url(source).url()
        endpoint = check_url(endpoint_url) if endpoint_url is not None else None
    except ValueError as exc:
        flag = "--endpoint-url" if "http" in str(exc) else "SOURCE"
        raise ConfigError(f"{flag}: {exc}") from None
    return S3Settings(url=url, endpoint_url=endpoint, anonymous=anonymous)


# -- building the typed settings from the checked values -------------------------------------

_GROUPS = {"item", "asset", "key"}


def _build_table(values: dict[str, Any] | None, where: str, ctx: ReadContext) -> TableConfig | None:
    if values is None:
        return None
    for key, problem in table_problems(values):
        ctx.error(f"{where}.table.{key}", problem)
    return TableConfig(
        path=values["path"],
        key=values["key"],
        item_column=values["item_column"],
        datetime=values["datetime"],
        datetime_format=values["datetime_format"],
        properties=tuple(values["properties"] or ()),
        layer=values["layer"],
        per_item=bool(values["per_item"]),
    )


def _check_match(values: dict[str, Any], where: str, ctx: ReadContext) -> None:
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


def _check_asset_titles(titles: dict[str, str], where: str, ctx: ReadContext) -> None:
    for name in titles:
        if safe_id(name) != name:
            ctx.error(
                f"{where}.asset_titles.{name}", f"not an asset key; did you mean {safe_id(name)!r}?"
            )


def _check_description(text: str | None, where: str, ctx: ReadContext) -> None:
    if text is None:
        return
    try:
        check_description(text)
    except ValueError as exc:
        ctx.error(f"{where}.description", str(exc))


def _literal_braces(text: str) -> str:
    # A title standing in for the description is text, not a template.
    return text.replace("{", "{{").replace("}", "}}")


def _check_properties(properties: dict[str, Any], where: str, ctx: ReadContext) -> None:
    if "datetime" in properties:
        ctx.error(f"{where}.properties.datetime", "set default_datetime or table.datetime instead")


def _build_collection(values: dict[str, Any], where: str, ctx: ReadContext) -> CollectionConfig:
    _check_match(values, where, ctx)
    _check_asset_titles(values["asset_titles"], where, ctx)
    for key, problem in asset_key_problems(values["asset_keys"]):
        ctx.error(f"{where}.asset_keys.{key}", problem)
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
        table=_build_table(values["table"], where, ctx),
        properties=values["properties"],
        asset_titles={**DEFAULT_ASSET_TITLES, **values["asset_titles"]},
        crs=values["crs"],
        default_datetime=values["default_datetime"],
        pc_type=values["pc_type"],
        license_url=values["license_url"],
        item_title=values["item_title"] or DEFAULT_ITEM_TITLE,
        asset_keys=values["asset_keys"],
    )


def _build_collections(
    items: list[dict[str, Any]], ctx: ReadContext
) -> tuple[CollectionConfig, ...]:
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


def _build_settings(values: dict[str, Any], config_path: Path | None, ctx: ReadContext) -> Settings:
    source, output = values["source"], values["output"]
    source_path = _one_of(source, "source", ctx)
    output_path = _one_of(output, "output", ctx)
    if source_path is not None and source_path == output_path:
        ctx.error("output.path", "must not be the source folder itself")
    irods = _build_irods(values["irods"], output["irods"])
    source_s3, output_s3 = _s3(source, "source", ctx), _s3(output, "output", ctx)
    if output_s3 is not None and output["parent_catalog"] is not None:
        ctx.error("output.parent_catalog", "not supported with output.url (S3) yet")
    public_url = output["public_url"]
    if public_url is None and output["irods"]:
        public_url = irods.public_href(output["irods"])
    collections = _build_collections(values["collection"], ctx)
    if source["irods"] is not None or source_s3 is not None:
        root = str(source_path)  # the iRODS collection, or /s3:/bucket/prefix
        collections = _fetched_tables(collections, root, values["manifest"]["path"])
    notify = _build_notify(values["notify"], ctx)
    stac_api = _build_stac_api(values["stac_api"], ctx)
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
        item_ids=values["catalog"]["item_ids"],
        checksum=values["checksum"]["algorithm"],
        workers=_workers(values["extract"]["workers"]),
        collections=collections,
        config_path=config_path,
        source_irods=source["irods"],
        output_irods=output["irods"],
        source_s3=source_s3,
        output_s3=output_s3,
        irods=irods,
        parent_catalog=output["parent_catalog"],
        notify=notify,
        read_overviews=values["extract"]["read_overviews"],
        remote_threads=values["extract"]["remote_threads"],
        verify_border=values["extract"]["verify_border"],
        scheduler=values["scale"]["scheduler"],
        batch_files=max(1, values["scale"]["batch_files"]),
        geoparquet=bool(output["geoparquet"]),
        daemon=DaemonOptions(**values["daemon"]),
        stac_api=stac_api,
    )


def _geoparquet_installed() -> bool:
    # find_spec, not import: pyarrow costs every start-up far more than this check.
    try:
        return all(importlib.util.find_spec(name) for name in ("stac_geoparquet", "pyarrow"))
    except (ImportError, ValueError):
        return False


def _build_notify(values: dict[str, Any] | None, ctx: ReadContext) -> MailSettings | None:
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


def _build_stac_api(values: dict[str, Any] | None, ctx: ReadContext) -> StacApiSettings | None:
    if values is None or values["kind"] is None:
        return None  # absent, or the required kind already reported
    api = StacApiSettings(**values)
    for problem in api.problems():
        ctx.errors.append(f"stac_api.{problem}")
    return api


def _fetched_tables(
    collections: tuple[CollectionConfig, ...], root: str, manifest: Path
) -> tuple[CollectionConfig, ...]:
    """Tables inside an iRODS or S3 source are read from local copies kept beside the manifest.

    A per-item table's `path` stays a template there too (`{item}` in both).
    """
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


def _one_of(values: dict[str, Any], where: str, ctx: ReadContext) -> Path | None:
    """The folder, iRODS collection or S3 prefix a `[source]`/`[output]` table names (exactly
    one), as a path: an S3 prefix is `/s3:/bucket/prefix`, only ever used as a label."""
    given = [k for k in ("path", "irods", "url") if values[k] is not None]
    if len(given) > 1:
        named = " and ".join(f"{where}.{k}" for k in given)
        ctx.error(
            f"{where}.{given[1]}",
            f"give only one of {where}.path, {where}.irods and {where}.url ({named} are set)",
        )
    elif not given:
        # A key given but refused (a bad URL) was reported already: no "required" on top.
        if not any(e.startswith(f"{where}.") for e in ctx.errors):
            ctx.error(
                f"{where}.path",
                f"required (or {where}.irods for an iRODS collection, {where}.url for S3)",
            )
        return None
    if values["path"] is not None:
        return values["path"]
    if values["irods"] is not None:
        return Path(values["irods"])
    location = parse_s3_url(values["url"])
    return Path("/s3:") / location.bucket / location.prefix


def _s3(values: dict[str, Any], where: str, ctx: ReadContext) -> S3Settings | None:
    """The `[source]`/`[output]` S3 settings, or None when the table names no `url`."""
    if values["url"] is None:
        for key in ("endpoint_url", "region"):
            if values[key] is not None:
                ctx.error(f"{where}.{key}", f"only used with {where}.url (an S3 bucket)")
        return None
    return S3Settings(
        url=values["url"],
        endpoint_url=values["endpoint_url"],
        region=values["region"],
        anonymous=bool(values.get("anonymous", False)),
        public=bool(values.get("public", False)),
    )


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
