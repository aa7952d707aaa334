"""Tests for stacsync.extract.extract_stream: the same records as extract_file, from a stream.

Real files from ../shared/testdata, large generated files to bound the bytes read, flaky streams.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import laspy
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

import stacsync.core.retry as retry
from stacsync.core.errors import ExtractError
from stacsync.extract import streams
from stacsync.extract.dispatch import TransientIOError, extract_file, extract_stream

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

_EXPECTED_JSON = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "expected.json"
_FILES = json.loads(_EXPECTED_JSON.read_text())["files"] if _EXPECTED_JSON.is_file() else {}
ALL_FILES = sorted(n for n, f in _FILES.items() if f.get("kind") in ("raster", "pointcloud"))

# Well under the brief's 1 MB: header, IFDs/VLRs and offset arrays only.
MAX_HEADER_BYTES = 256 * 1024


class CountingStream(io.FileIO):
    """A read-only file that counts read calls and bytes handed out; can fail on chosen reads."""

    def __init__(self, path: Path, fail: dict[int, OSError] | None = None, chunk: int = 0) -> None:
        super().__init__(path, "r")
        self.reads = 0
        self.bytes_read = 0
        self.fail = fail or {}  # read number (1-based) -> error to raise instead
        self.chunk = chunk  # > 0: never hand out more than this per call (short reads)

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads in self.fail:
            raise self.fail[self.reads]
        if self.chunk and (size < 0 or size > self.chunk):
            size = self.chunk
        data = super().read(size)
        self.bytes_read += len(data)
        return data


class Opener:
    """open_stream for extract_stream: a new CountingStream per call, all of them kept."""

    def __init__(self, path: Path, **kwargs) -> None:
        self.path, self.kwargs = path, kwargs
        self.streams: list[CountingStream] = []

    def __call__(self) -> CountingStream:
        stream = CountingStream(self.path, **self.kwargs)
        self.streams.append(stream)
        return stream

    @property
    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.streams)

    @property
    def reads(self) -> int:
        return sum(s.reads for s in self.streams)


def _result(call):
    try:
        return call()
    except ExtractError as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the retry count, drop the back-off sleeps."""
    monkeypatch.setattr(retry, "BACKOFF_SECONDS", 0.0)


# --- the same record as from a path ----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FILES)
def test_stream_gives_what_the_path_gives(testdata: Path, name: str) -> None:
    """Every field, every warning and every error message, for every real file."""
    path = testdata / name
    opener = Opener(path)
    from_path = _result(lambda: extract_file(str(path)))
    from_stream = _result(lambda: extract_stream(name, path.stat().st_size, opener))
    assert from_stream == from_path
    assert all(s.closed for s in opener.streams)  # none is opened for an empty file


def test_short_reads_change_nothing(testdata: Path) -> None:
    for name in ("cogeo.tif", "RGB.byte.tif", "autzen_trim.laz", "1_4_w_evlr.laz"):
        path = testdata / name
        opener = Opener(path, chunk=100)
        assert extract_stream(name, path.stat().st_size, opener) == extract_file(str(path))


def test_streams_in_worker_threads(testdata: Path) -> None:
    # rasterio keeps its opener registry per thread; the daemon extracts in a thread pool.
    names = ["cogeo.tif", "dataset_cog.tif", "RGB.byte.tif", "autzen_trim.laz"] * 2

    def work(name: str):
        path = testdata / name
        return extract_stream(name, path.stat().st_size, functools.partial(open, path, "rb"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, names))
    assert results == [extract_file(str(testdata / n)) for n in names]


def test_crs_override_applies(testdata: Path) -> None:
    path = testdata / "float_nan.tif"
    meta = extract_stream(
        "float_nan.tif", path.stat().st_size, Opener(path), crs_override="EPSG:32618"
    )
    assert meta == extract_file(str(path), crs_override="EPSG:32618")
    assert meta.crs_code == "EPSG:32618"


def test_gdal_reads_through_the_opener(testdata: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes exist only in memory, so whatever GDAL learnt it read through our opener."""
    data = (testdata / "dataset_cog.tif").read_bytes()
    gdal_opens: list[str] = []
    real_open = streams.StreamFiles.open

    def spy(self, path, mode="r", **kwds):
        gdal_opens.append(path)
        return real_open(self, path, mode, **kwds)

    monkeypatch.setattr(streams.StreamFiles, "open", spy)
    meta = extract_stream("in_memory.tif", len(data), lambda: io.BytesIO(data))
    assert gdal_opens and all(p.endswith("/in_memory.tif") for p in gdal_opens)
    assert (meta.raster.width, meta.raster.height) == (2658, 2667)
    assert meta.raster.overviews == (2, 4, 8, 16) and meta.raster.is_cog
    assert meta == extract_file(str(testdata / "dataset_cog.tif"))


def test_unknown_extension() -> None:
    with pytest.raises(ExtractError, match=r"^notes\.txt: no reader for this file type$"):
        extract_stream("notes.txt", 10, lambda: io.BytesIO(b"0123456789"))


@pytest.mark.parametrize("name", ["x.tif", "x.laz"])
def test_empty_stream(name: str) -> None:
    with pytest.raises(ExtractError, match=rf"^{name}: file is empty$"):
        extract_stream(name, 0, lambda: io.BytesIO(b""))


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gone.tif", "gone.las"])
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory"), "file not found"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EINVAL, "Invalid argument"), "cannot read file (Invalid argument)"),
    ],
)
def test_open_errors(name: str, error: OSError, message: str) -> None:
    def open_stream():
        raise error

    with pytest.raises(ExtractError) as info:
        extract_stream(name, 1000, open_stream)
    assert str(info.value) == f"{name}: {message}"
    assert not isinstance(info.value, TransientIOError)


@pytest.mark.parametrize(
    ("name", "failing_read"),
    [
        ("cogeo.tif", 1),  # the first block GDAL asks for
        ("RGB.byte.tif", 2),  # the IFD at the end of the file, read by GDAL: hidden from it
        ("RGB.byte.tif", 3),  # the rest of the head, read by our IFD reader
        ("autzen_trim.laz", 2),
    ],
)
def test_transient_read_errors_are_retried(
    testdata: Path, no_retry_wait: None, name: str, failing_read: int
) -> None:
    path = testdata / name
    opener = Opener(path, fail={failing_read: OSError(errno.EREMOTEIO, "Remote I/O error")})
    with pytest.raises(TransientIOError) as info:
        extract_stream(name, path.stat().st_size, opener)
    assert str(info.value).startswith(f"{name}: I/O error persisted after {retry.ATTEMPTS}")
    assert len(opener.streams) == retry.ATTEMPTS
    assert all(s.closed for s in opener.streams)


def test_one_transient_hiccup_is_cured_by_a_retry(testdata: Path, no_retry_wait: None) -> None:
    path = testdata / "RGB.byte.tif"
    calls: list[CountingStream] = []

    def open_stream() -> CountingStream:
        fail = {2: OSError(errno.EIO, "Input/output error")} if not calls else None
        calls.append(CountingStream(path, fail=fail))
        return calls[-1]

    assert extract_stream("RGB.byte.tif", path.stat().st_size, open_stream) == extract_file(
        str(path)
    )
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("error", "raised", "message"),
    [
        (OSError(errno.EREMOTEIO, "Remote I/O error"), TransientIOError, "I/O error persisted"),
        (OSError(errno.EINVAL, "Invalid argument"), ExtractError, r"cannot read file \(Invalid"),
    ],
)
def test_stream_errors_while_reading_pixels_are_not_hidden(
    large_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    no_retry_wait: None,
    error: OSError,
    raised: type,
    message: str,
) -> None:
    """A stream that fails on the overview's blocks fails the file (retried if transient):
    GDAL only sees a short read, and a grid box and no thumbnail must not be recorded for it."""
    from stacsync.extract import raster

    failing = {"on": False}
    real_read_sample = raster.read_sample

    def read_sample(*args, **kwargs):
        failing["on"] = True
        try:
            return real_read_sample(*args, **kwargs)
        finally:
            failing["on"] = False

    class Failing(CountingStream):
        def read(self, size: int = -1) -> bytes:
            if failing["on"]:
                raise error
            return super().read(size)

    monkeypatch.setattr(raster, "read_sample", read_sample)
    path = large_files["large.tif"]  # the overview's blocks are far from the header's
    with pytest.raises(raised, match=message):
        extract_stream("large.tif", path.stat().st_size, lambda: Failing(path))


@pytest.mark.parametrize(("name", "failing_read"), [("RGB.byte.tif", 2), ("simple.las", 2)])
def test_permanent_read_error(testdata: Path, name: str, failing_read: int) -> None:
    path = testdata / name
    opener = Opener(path, fail={failing_read: OSError(errno.EINVAL, "Invalid argument")})
    with pytest.raises(ExtractError) as info:
        extract_stream(name, path.stat().st_size, opener)
    assert str(info.value) == f"{name}: cannot read file (Invalid argument)"
    assert len(opener.streams) == 1


def test_memory_error_becomes_extract_error() -> None:
    def open_stream():
        raise MemoryError

    with pytest.raises(ExtractError, match=r"^huge\.laz: header asks for more memory"):
        extract_stream("huge.laz", 10**12, open_stream)


def test_truncated_object(testdata: Path) -> None:
    # An upload cut short: the header (which GDAL opens happily) declares more than there is.
    data = (testdata / "dataset_cog.tif").read_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(ExtractError) as info:
        extract_stream("cut_cog.tif", len(cut), lambda: io.BytesIO(cut))
    assert str(info.value) == (
        f"cut_cog.tif: file is truncated (header declares data up to byte {len(data)}, "
        f"file has {len(cut)} bytes)"
    )


# --- bounded reads on large files --------------------------------------------------------------


@pytest.fixture(scope="session")
def large_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """~50 MB tiled GeoTIFF with overviews (IFDs of the overviews after the pixels), ~50 MB LAS
    and ~50 MB LAZ (random points barely compress); about a second to write."""
    folder = tmp_path_factory.mktemp("large")
    tif = folder / "large.tif"
    profile = {
        "driver": "GTiff", "width": 4400, "height": 4400, "count": 2, "dtype": "uint8",
        "crs": "EPSG:32631", "transform": Affine(0.1, 0.0, 500000.0, 0.0, -0.1, 5700000.0),
        "tiled": True, "blockxsize": 256, "blockysize": 256,
    }  # fmt: skip
    with rasterio.open(tif, "w", **profile) as dst:
        row = (np.arange(4400) % 251).astype(np.uint8)
        dst.write(np.broadcast_to(row, (2, 4400, 4400)))
        dst.build_overviews([2, 4, 8, 16], Resampling.nearest)
    yield {
        "large.tif": tif,
        "large.las": _write_cloud(folder / "large.las", 1_500_000),
        "large.laz": _write_cloud(folder / "large.laz", 4_000_000),
    }
    shutil.rmtree(folder)  # 160 MB: not worth keeping in pytest's last three temp folders


def _write_cloud(path: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    header = laspy.LasHeader(point_format=3, version="1.4")
    header.scales = [0.01, 0.01, 0.01]
    header.offsets = [500000.0, 5700000.0, 0.0]
    header.add_crs(pyproj.CRS.from_epsg(32631))
    las = laspy.LasData(header)
    las.x = 500000 + rng.uniform(0, 1000, n)
    las.y = 5700000 + rng.uniform(0, 1000, n)
    las.z = rng.uniform(0, 50, n)
    las.intensity = rng.integers(0, 65535, n, dtype=np.uint16)
    las.gps_time = np.sort(rng.uniform(0, 1e5, n))
    las.write(path)
    return path


def _sampled_overview(path: Path) -> tuple[int, int]:
    """(bytes, blocks) of the overview a raster's footprint and thumbnail are read from: the
    coarsest at least MIN_SIDE long, its blocks counted whole and uncompressed."""
    from stacsync.extract.overview import MIN_SIDE

    with rasterio.open(path) as src:
        levels = len(src.overviews(1))
    for level in reversed(range(levels)):
        with rasterio.open(path, overview_level=level) as ovr:
            if max(ovr.width, ovr.height) < MIN_SIDE:
                continue
            rows, cols = ovr.block_shapes[0]
            blocks = -(-ovr.height // rows) * -(-ovr.width // cols)
            return blocks * rows * cols * ovr.count * np.dtype(ovr.dtypes[0]).itemsize, blocks
    raise AssertionError("no overview to sample")


@pytest.mark.parametrize("name", ["large.tif", "large.las", "large.laz"])
def test_large_file_reads_only_its_header(large_files: dict[str, Path], name: str) -> None:
    """The header, and for a raster the blocks of one small overview (footprint, thumbnail)."""
    path = large_files[name]
    size = path.stat().st_size
    assert size > 45_000_000
    pixels, blocks = _sampled_overview(path) if name == "large.tif" else (0, 0)
    opener = Opener(path)
    meta = extract_stream(name, size, opener)
    assert len(opener.streams) == 1  # one stream serves GDAL's handles and our own reads
    assert opener.bytes_read < MAX_HEADER_BYTES + pixels, (opener.bytes_read, pixels, size)
    assert opener.reads <= 12 + blocks, opener.reads
    assert meta == extract_file(str(path))
    if name == "large.tif":
        assert meta.raster.overviews == (2, 4, 8, 16) and meta.raster.tiled
        assert not meta.raster.is_cog  # overview IFDs and data after the full resolution
    else:
        assert meta.pointcloud.point_count == (1_500_000 if name == "large.las" else 4_000_000)


def test_large_raster_gdal_reads_are_counted(
    large_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL's own reads go through the stream: counted, and bounded too."""
    gdal_bytes: list[int] = []
    real_read = streams.StreamView.read

    def spy(self, size=-1):
        data = real_read(self, size)
        if self._for_gdal:
            gdal_bytes.append(len(data))
        return data

    monkeypatch.setattr(streams.StreamView, "read", spy)
    path = large_files["large.tif"]
    pixels, _blocks = _sampled_overview(path)
    opener = Opener(path)
    extract_stream("large.tif", path.stat().st_size, opener)
    assert len(gdal_bytes) > 10  # libtiff reads the IFDs a few bytes at a time...
    assert 0 < sum(gdal_bytes) < MAX_HEADER_BYTES + pixels
    assert opener.reads < len(gdal_bytes)  # ...which the block cache turns into a few reads
