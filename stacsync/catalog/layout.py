"""Place a file's relative path in the catalog: its collection, item id and asset key.

Joins metadata tables (CSV, GeoPackage; one per collection or one per item), read lazily.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from stacsync.config.collection_keys import ITEM_PLACEHOLDER
from stacsync.config.kinds import to_utc_iso
from stacsync.config.settings import CollectionConfig, Settings, TableConfig
from stacsync.core.errors import ConfigError
from stacsync.core.ids import item_id, safe_id

CSV_SUFFIXES = (".csv", ".tsv", ".txt")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one file goes. `item_id == ""` means it cannot be placed: `problem` says why."""

    collection_id: str
    item_id: str  # core.ids.item_id; "" when it must come from a table row that is missing
    asset_key: str  # safe_id
    datetime: str | None  # ISO 8601 UTC from the table, when the table gives one
    # From the table row's configured columns (JSON values); shared by the row's files (a pass
    # holds a Placement per file): read it, never change it.
    properties: dict[str, Any]
    problem: str | None  # e.g. "no row with dataset_id='000123' in metadata/missions.gpkg"
    table_key: str | None = None  # the join key as the table spells it (for unused_rows)

    @property
    def placed(self) -> bool:
        """False when the file has no item (its problem should become the file's error)."""
        return bool(self.item_id)


@dataclass
class _Row:
    key: str
    item: str | None
    datetime: Any
    properties: dict[str, Any]


@dataclass
class _Table:
    """One loaded metadata table, indexed by join key."""

    label: str  # the path as configured, for messages
    key_column: str
    rows: dict[str, _Row] = field(default_factory=dict)
    duplicates: set[str] = field(default_factory=set)

    def add(self, row: _Row) -> None:
        if row.key in self.rows:
            self.duplicates.add(row.key)  # first row wins; the duplicate is reported
            return
        self.rows[row.key] = row

    def only_row(self) -> _Row | None:
        """The first row of a table read without a key column (a per-item file's one row)."""
        return next(iter(self.rows.values()), None)

    def find(self, key: str) -> _Row | None:
        row = self.rows.get(key)
        if row is None and key.isascii() and key.isdigit():
            # a numeric column loses leading zeros: "000421" in a path is 421 in the table
            row = self.rows.get(str(int(key)))
        return row


class Layout:
    """Maps relative paths to placements; tables load at first use and `reload()` drops them."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._collections = {c.id: (i, c) for i, c in enumerate(settings.collections)}
        self._tables: dict[int, _Table] = {}
        # Per-item tables read this pass, by (collection index, item group): a table, or
        # the problem that keeps the item's files from being placed.
        self._item_tables: dict[tuple[int, str], _Table | str] = {}
        self._lock = threading.Lock()
        self._ids = settings.item_ids  # the scheme of `item_id`

    def place(self, relpath: str) -> Placement | None:
        """The placement of a file, or None when no collection's `match` finds it."""
        for index, collection in enumerate(self._settings.collections):
            groups = collection.match.search(relpath)
            if groups is not None:
                return self._place(index, collection, groups)
        return None

    def table_files(self) -> list[Path]:
        """Every configured table file, so a caller can notice when one changes."""
        paths = [
            c.table.path
            for c in self._settings.collections
            if c.table is not None and not c.table.per_item  # those: see pipeline.item_tables
        ]
        return list(dict.fromkeys(paths))

    def unused_rows(self, collection_id: str, used_keys: set[str]) -> list[str]:
        """Table keys that no file used (`used_keys` as in `Placement.table_key`), sorted."""
        index, collection = self._collections[collection_id]
        if collection.table is None or collection.table.per_item:
            return []  # a per-item file is its item's: reading them all would cost a GET each
        table = self._table(index, collection)
        used = {row.key for row in map(table.find, used_keys) if row is not None}
        return sorted(set(table.rows) - used)

    def reload(self) -> None:
        """Forget loaded tables; they are read again at next use."""
        with self._lock:
            self._tables.clear()
            self._item_tables.clear()

    def forget_item_table(self, collection_id: str, item: str) -> None:
        """Drop one per-item table read earlier (its file changed); `item` is the item group."""
        index, _collection = self._collections[collection_id]
        with self._lock:
            self._item_tables.pop((index, item), None)

    def _table(self, index: int, collection: CollectionConfig) -> _Table:
        with self._lock:
            if index not in self._tables:
                assert collection.table is not None
                self._tables[index] = _load_table(collection.table, index, self._settings)
            return self._tables[index]

    def _item_table(self, index: int, config: TableConfig, item: str) -> _Table | str:
        with self._lock:
            found = self._item_tables.get((index, item))
            if found is None:
                found = _load_item_table(config, index, self._settings, item)
                self._item_tables[(index, item)] = found
            return found

    def _place(self, index: int, collection: CollectionConfig, groups: dict[str, str]) -> Placement:
        name = groups.get("asset", "data")
        asset_key = safe_id(collection.asset_keys.get(name, name))
        item = groups.get("item")
        if collection.table is None:
            return _placement(self._ids, collection, item, asset_key, problem=_no_item(item))
        join_key = groups.get("key") or item or groups.get("asset") or ""
        if collection.table.per_item:
            if not item:
                return _placement(self._ids, collection, None, asset_key, problem=_NO_ITEM)
            table = self._item_table(index, collection.table, item)
            if isinstance(table, str):  # no file, or unreadable: the item waits for it
                return _placement(self._ids, collection, None, asset_key, problem=table)
            row = table.find(join_key) if collection.table.key else table.only_row()
        else:
            table = self._table(index, collection)
            row = table.find(join_key)
        if row is None:
            problem = (
                f"no row with {table.key_column}={join_key!r} in {table.label}"
                if table.key_column
                else f"no row in {table.label}"
            )
            item = None if collection.table.item_column else item
            return _placement(self._ids, collection, item, asset_key, problem=problem, key=join_key)
        return _joined(self._ids, collection, collection.table, table, row, item, asset_key)


_NO_ITEM = "the match found no item id (the `item` group is empty)"


def _no_item(item: str | None) -> str | None:
    return None if item else _NO_ITEM


def _placement(
    scheme: str,
    collection: CollectionConfig,
    item: str | None,
    asset_key: str,
    *,
    problem: str | None = None,
    when: str | None = None,
    properties: dict[str, Any] | None = None,
    key: str | None = None,
) -> Placement:
    return Placement(
        collection_id=collection.id,
        item_id=item_id(item, scheme) if item else "",
        asset_key=asset_key,
        datetime=when,
        properties=properties or {},
        problem=problem,
        table_key=key,
    )


def _joined(
    scheme: str,
    collection: CollectionConfig,
    config: TableConfig,
    table: _Table,
    row: _Row,
    item: str | None,
    asset_key: str,
) -> Placement:
    problems = []
    if row.key in table.duplicates and table.key_column:
        problems.append(f"several rows with {table.key_column}={row.key!r} in {table.label}")
    elif not table.key_column and table.duplicates:  # a per-item file: its first row taken
        problems.append(f"several rows in {table.label}; set table.key to pick the item's row")
    if config.item_column:
        item = row.item
        if not item:
            problems.append(f"empty {config.item_column!r} in the row {row.key!r} of {table.label}")
    elif not item:
        problems.append(_NO_ITEM)
    when = None
    if row.datetime is not None:
        try:
            when = _row_iso(row.datetime, config.datetime_format)
        except ValueError as exc:
            problems.append(f"{config.datetime} of row {row.key!r} in {table.label}: {exc}")
    return _placement(
        scheme,
        collection,
        item,
        asset_key,
        problem="; ".join(problems) or None,
        when=when,
        properties=row.properties,
        key=row.key,
    )


@functools.lru_cache(maxsize=1024)
def _row_iso(value: Any, datetime_format: str | None) -> str:
    """The row's datetime in ISO 8601 UTC: one string for all the files of its item."""
    return to_utc_iso(value, datetime_format)


# --------------------------------------------------------------------------------------------
# Reading tables.
# --------------------------------------------------------------------------------------------


def _load_table(config: TableConfig, index: int, settings: Settings) -> _Table:
    where = f"collection[{index}].table"
    label = _label(config.path, settings.source_path)
    if not config.path.is_file():
        raise ConfigError(f"{where}.path: table file not found: {config.path}")
    return _read_table(config, config.path, label, where)


def _load_item_table(
    config: TableConfig, index: int, settings: Settings, item: str
) -> _Table | str:
    """One item's own table file, or a problem naming it (the item's files go into error)."""
    template = config.source_relpath or _label(config.path, settings.source_path)
    if item in (".", "..") or any(c in item for c in "/\\\0"):
        # The item group comes from a file name: it must not lead out of the template's folder.
        return f"item {item!r} cannot name a metadata file ({template})"
    label = template.replace(ITEM_PLACEHOLDER, item)
    path = Path(str(config.path).replace(ITEM_PLACEHOLDER, item))
    if not path.is_file():
        fetched = (
            " (or not fetched: see the pass's listing problems)" if config.source_relpath else ""
        )
        return f"metadata file {label} not found{fetched}"
    try:
        return _read_table(config, path, label, f"collection[{index}].table", item=item)
    except ConfigError as exc:
        # "collection[0].table.datetime: no column 'x' in 000101/…" : the key it concerns, too
        return str(exc)


def _read_table(
    config: TableConfig, path: Path, label: str, where: str, item: str | None = None
) -> _Table:
    try:
        if path.suffix.lower() in CSV_SUFFIXES:
            columns, records = _read_csv(path)
        else:
            columns, records = _read_gpkg(path, config.layer)
    except (OSError, UnicodeDecodeError, csv.Error, RuntimeError) as exc:
        raise ConfigError(f"{where}.path: cannot read {label if item else path}: {exc}") from None
    _check_columns(config, columns, where, label)
    table = _Table(label=label, key_column=config.key or "")
    for record in records:
        # Without a key column every row of an item's file is that item's (the first wins).
        row = _row(config, record, item if config.key is None else None)
        if row is not None:
            table.add(row)
    return table


def _label(path: Path, source: Path) -> str:
    try:
        return path.relative_to(source).as_posix()
    except ValueError:
        return str(path)


def _check_columns(config: TableConfig, columns: list[str], where: str, label: str) -> None:
    wanted = [("key", config.key), ("item_column", config.item_column)]
    wanted += [("datetime", config.datetime)]
    wanted += [("properties", name) for name in config.properties]
    for setting, column in wanted:
        if column is not None and column not in columns:
            shown = ", ".join(columns)
            raise ConfigError(
                f"{where}.{setting}: no column {column!r} in {label} (columns: {shown})"
            )


def _row(config: TableConfig, record: dict[str, Any], key: str | None = None) -> _Row | None:
    if key is None:
        key = _key_text(record.get(config.key)) if config.key else None
    if key is None:
        return None  # a row without a key can join nothing
    item = _key_text(record.get(config.item_column)) if config.item_column else None
    when = _clean(record.get(config.datetime)) if config.datetime else None
    properties = {}
    for column in config.properties:
        value = _clean(record.get(column))
        if value is not None:
            properties[column] = value
    return _Row(key=key, item=item, datetime=when, properties=properties)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    # utf-8-sig: spreadsheets often save CSV with a byte-order mark before the first header
    with path.open(newline="", encoding="utf-8-sig") as handle:
        delimiter = _delimiter(handle.readline())
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter=delimiter)
        records = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
        columns = [c.strip() for c in reader.fieldnames or []]
    return columns, records


def _delimiter(header: str) -> str:
    """The separator the header line uses most: comma, semicolon (European Excel) or tab."""
    return max(",;\t", key=header.count) if header.strip() else ","


def _read_gpkg(path: Path, layer: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    """The attribute columns of one GeoPackage layer, read with sqlite3.

    A GeoPackage is an SQLite database (OGC 12-128r18) and only attributes are joined, so
    neither GDAL nor its start-up cost (a third of a first build's main thread) is needed.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise RuntimeError(f"cannot open it as SQLite ({exc})") from None
    with contextlib.closing(conn):
        try:
            layers = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM gpkg_contents"
                    " WHERE data_type IN ('features', 'attributes') ORDER BY rowid"
                )
            ]
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"not a GeoPackage ({exc})") from None
        if not layers:
            raise RuntimeError("the GeoPackage holds no layer")
        name = layers[0] if layer is None else layer
        if name not in layers:
            raise RuntimeError(f"no layer {name!r} (layers: {', '.join(layers)})")
        return _gpkg_layer(conn, name)


def _gpkg_layer(conn: sqlite3.Connection, name: str) -> tuple[list[str], list[dict[str, Any]]]:
    geometry = (
        {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (name,)
            )
        }
        if _has_table(conn, "gpkg_geometry_columns")
        else set()
    )
    quoted = '"' + name.replace('"', '""') + '"'
    # (cid, name, type, notnull, default, pk): the INTEGER primary key is GDAL's FID, not a field
    info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
    fields = [(c[1], c[2].upper()) for c in info if c[1] not in geometry and not c[5]]
    columns = [column for column, _type in fields]
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) or "NULL"
    records = []
    for values in conn.execute(f"SELECT {select} FROM {quoted} ORDER BY rowid"):
        record = {}
        for (column, kind), value in zip(fields, values, strict=True):
            # GeoPackage stores BOOLEAN as 0/1; DATE and DATETIME are ISO 8601 text already.
            record[column] = bool(value) if kind == "BOOLEAN" and value is not None else value
        records.append(record)
    return columns, records


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


# --------------------------------------------------------------------------------------------
# Cell values.
# --------------------------------------------------------------------------------------------


def _key_text(value: Any) -> str | None:
    """A join key or item id as text: 421.0 → "421", blank → None."""
    value = _clean(value)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() or None


def _clean(value: Any) -> Any:
    """A JSON value from a table cell: numpy scalars unwrapped; NaN, NaT and blanks → None."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # numpy scalar → Python scalar
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.strip()
        return None if value in ("", "NaT") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return to_utc_iso(value)
    return value
