"""Write the catalog's items as one stac-geoparquet file (`items.parquet`), atomically.

Memory stays bounded: items are converted a batch at a time and spilled to disk first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from stacsync.catalog.links import PARQUET_PATH
from stacsync.core.atomic import TEMP_PREFIX, atomic_path
from stacsync.core.errors import StacsyncError

if TYPE_CHECKING:
    import pyarrow as pa


DEFAULT_BATCH_SIZE = 1000


class GeoParquetError(StacsyncError):
    """The items cannot be written as GeoParquet (e.g. one field holds clashing types)."""


@dataclass(frozen=True)
class ParquetSummary:
    """What `write_items_parquet` wrote."""

    items: int
    batches: int
    size: int  # bytes of the GeoParquet file


def write_items_parquet(
    items: Iterable[Mapping[str, Any] | str | bytes],
    target: str | os.PathLike[str] | BinaryIO,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    work_dir: str | os.PathLike[str] | None = None,
) -> ParquetSummary:
    """Write `items` (STAC Item dicts or their JSON text, consumed once) as stac-geoparquet.

    `target` is a path, replaced atomically (a temp file beside it, then a rename), or an
    open binary file that the caller makes atomic (`LocalOutput.open_atomic`). At most
    `batch_size` items are held at once; converted batches wait in `work_dir` (default:
    the system temp folder) until one schema covering all of them is known.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    _require_stac_geoparquet()
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=work_dir) as work:
        chunks = _spill(items, Path(work), batch_size)
        if isinstance(target, str | os.PathLike):
            size = _write_file_atomically(chunks, Path(target))
        else:
            built = Path(work) / PARQUET_PATH
            _write_geoparquet(chunks, built)
            with built.open("rb") as stream:
                shutil.copyfileobj(stream, target)
            size = built.stat().st_size
    return ParquetSummary(items=chunks.rows, batches=len(chunks.files), size=size)


def _require_stac_geoparquet() -> None:
    # Imported only here: pyarrow and friends cost start-up time and memory, and a
    # deployment without them should fail with a sentence, not a traceback.
    try:
        import stac_geoparquet.arrow  # noqa: F401
    except ImportError as exc:
        raise GeoParquetError(
            f"writing {PARQUET_PATH} needs the stac-geoparquet package: {exc}"
        ) from exc


@dataclass(frozen=True)
class _Chunks:
    """Batches converted to Arrow and written to Parquet files, in item order."""

    files: list[Path]
    schema: pa.Schema  # one schema every chunk can be cast to
    rows: int


def _spill(
    items: Iterable[Mapping[str, Any] | str | bytes], work: Path, batch_size: int
) -> _Chunks:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files: list[Path] = []
    schemas: list[pa.Schema] = []
    rows = 0
    for number, batch in enumerate(_batches(items, batch_size)):
        table = _to_arrow(batch)
        path = work / f"{number:09d}.parquet"  # zero-padded: sorted order is item order
        pq.write_table(table, path)
        files.append(path)
        schemas.append(table.schema)
        rows += table.num_rows
    if not schemas:
        schemas.append(_to_arrow([_smallest_item()]).schema)
    try:
        # Batches differ when items do (an extra asset, an int where another has a float):
        # "permissive" widens to a schema that holds them all.
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except pa.ArrowException as exc:  # invalid, type, not-implemented: all the same here
        raise GeoParquetError(f"items cannot share one GeoParquet schema: {_short(exc)}") from exc
    return _Chunks(files, schema, rows)


def _smallest_item() -> dict[str, Any]:
    """The smallest valid item: an empty catalog's file gets its Arrow schema, so even an empty
    items.parquet has the columns and `geo` metadata readers expect."""
    import pystac

    from stacsync.catalog.model import to_dict

    moment = datetime(2000, 1, 1, tzinfo=UTC)
    point = {"type": "Point", "coordinates": [0.0, 0.0]}
    return to_dict(pystac.Item("-", point, [0.0, 0.0, 0.0, 0.0], moment, {}, collection="-"))


def _batches(
    items: Iterable[Mapping[str, Any] | str | bytes], size: int
) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(items)
    # JSON text is parsed a batch at a time: the index's feature lines can be fed as they are.
    while batch := [_item(item) for item in islice(iterator, size)]:
        yield batch


def _item(item: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    return json.loads(item) if isinstance(item, str | bytes) else dict(item)


def _to_arrow(batch: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa
    from stac_geoparquet.arrow import parse_stac_items_to_arrow

    try:
        return parse_stac_items_to_arrow(batch, schema="FullFile").read_all()
    except pa.ArrowException as exc:  # invalid, type, not-implemented: all the same here
        first = batch[0].get("id")
        raise GeoParquetError(
            f"items {first!r}… cannot be converted to Arrow: {_short(exc)}"
        ) from exc


def _write_file_atomically(chunks: _Chunks, target: Path) -> int:
    with atomic_path(target, suffix=".parquet") as tmp:
        _write_geoparquet(chunks, tmp)
    return target.stat().st_size


def _write_geoparquet(chunks: _Chunks, path: Path) -> None:
    import pyarrow as pa
    from stac_geoparquet.arrow import to_parquet

    reader = pa.RecordBatchReader.from_batches(chunks.schema, _read_back(chunks))
    to_parquet(reader, path)


def _read_back(chunks: _Chunks) -> Iterator[pa.RecordBatch]:
    import pyarrow.dataset as ds

    for path in chunks.files:
        # A dataset scan casts each chunk to the shared schema, nested struct fields too.
        yield from ds.dataset(path, schema=chunks.schema, format="parquet").to_batches()


def _short(exc: Exception) -> str:
    """Arrow's merge errors repeat every enclosing type; the innermost clause names the field."""
    return str(exc).rsplit("Unable to merge: ", 1)[-1]
