"""Tests for stacsync.extract.pointcloud: header-only LAS/LAZ/COPC extraction.

Real files from ../shared/testdata against expected.json; byte-patched copies for lying headers.
"""

from __future__ import annotations

import errno
import io
import json
import math
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import laspy
import lazrs
import numpy as np
import pyproj
import pytest
from laspy._compression import lazrsbackend
from laspy.vlrs.known import WktCoordinateSystemVlr
from laspy.vlrs.vlrlist import VLRList

from stacsync.core.errors import ExtractError
from stacsync.core.records import AssetMeta
from stacsync.extract import copc
from stacsync.extract import pointcloud as pc
from stacsync.extract.pointcloud import extract_pointcloud, extract_pointcloud_stream

_EXPECTED_JSON = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "expected.json"
_FILES = json.loads(_EXPECTED_JSON.read_text())["files"] if _EXPECTED_JSON.is_file() else {}
POINTCLOUDS = sorted(n for n, f in _FILES.items() if f.get("kind") == "pointcloud")
GARBAGE = "garbage_nVariableLength.las"

# Every point cloud that must fail, and the words its message must contain.
BAD = {
    GARBAGE: "header claims 1069128089 VLRs, more than fit before the point data",
    "truncated_autzen_trim.laz": "file is truncated",
    "1.2-no-points.las": "file is truncated (header declares 1065 points",
    "warsaw_small.las": "invalid CRS in WKT VLR",
    "simple.las": "no coordinate reference system (set crs in the collection config",
    "simple.laz": "no coordinate reference system (set crs in the collection config",
    "plane.laz": "no coordinate reference system laspy can read",
    "simple1_3.las": "the header box is wrong",
    "no-points.las": "no points, so no footprint",
}
GOOD = [n for n in POINTCLOUDS if n not in BAD]


def _refuse(*_args, **_kwargs):
    raise AssertionError("a point was about to be decoded")


@pytest.fixture(autouse=True)
def no_point_decoding(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every test here fails if anything reads or decompresses point records, but for the
    coarse levels of a COPC octree: those calls are let through and their point counts listed."""
    for attr in ("read_points", "read", "chunk_iterator", "_create_point_source"):
        monkeypatch.setattr(laspy.LasReader, attr, _refuse)
    monkeypatch.setattr(lazrsbackend.LazrsPointReader, "__init__", _refuse)
    for attr in ("LasZipDecompressor", "ParLasZipDecompressor", "decompress_points"):
        monkeypatch.setattr(lazrs, attr, _refuse)
    decoded: list[int] = []
    real = lazrs.decompress_points_with_chunk_table

    def counted(compressed, laszip, out, chunk_table, *args):
        decoded.append(sum(points for points, _size in chunk_table))
        return real(compressed, laszip, out, chunk_table, *args)

    monkeypatch.setattr(lazrs, "decompress_points_with_chunk_table", counted)
    return decoded


@pytest.fixture
def laspy_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """For files that must be rejected by our own header checks before laspy runs."""
    monkeypatch.setattr(laspy, "open", _refuse)


def _close(actual, wanted) -> bool:
    """Header numbers: equal up to float noise."""
    return all(math.isclose(a, w, rel_tol=1e-12) for a, w in zip(actual, wanted, strict=True))


def _close_deg(actual, wanted) -> bool:
    """Reprojected degrees: 1e-6 absolute, as the testdata README advises (PROJ versions differ)."""
    return all(abs(a - w) <= 1e-6 for a, w in zip(actual, wanted, strict=True))


def _expected_code(truth: dict) -> str | None:
    """expected.json codes the whole CRS; identify_crs names a bound CRS by its source CRS (a
    compound CRS without a code of its own gets none: proj:wkt2 describes it)."""
    if truth["crs_authority"]:
        return truth["crs_authority"]
    base = truth.get("source_crs_epsg")
    return f"EPSG:{base}" if base else None


# --- the real files ---------------------------------------------------------------------------


def test_every_pointcloud_is_classified(expected: dict) -> None:
    names = {n for n, f in expected.items() if f.get("kind") == "pointcloud"}
    assert set(BAD) <= names
    assert set(GOOD) == names - set(BAD)
    for name in GOOD:  # the ones we expect to succeed must be good in the ground truth too
        truth = expected[name]
        assert not {"open_error", "read_error", "crs_error"} & truth.keys(), name
        assert truth["bounds_4326"] is not None and truth["point_count"] > 0, name


@pytest.mark.parametrize("name", GOOD)
def test_good_file_matches_ground_truth(
    name: str, testdata: Path, expected: dict, no_point_decoding: list[int]
) -> None:
    truth = expected[name]
    meta = extract_pointcloud(testdata / name)
    if truth["extra"]["is_copc"]:  # one bounded decode of the octree's coarse levels
        assert len(no_point_decoding) == 1 and no_point_decoding[0] <= copc.MAX_POINTS
        assert meta.footprint_method.startswith("COPC octree level")
    else:
        assert no_point_decoding == [] and meta.footprint_method == "header box"
    info = meta.pointcloud
    assert meta.kind == "pointcloud" and info is not None
    assert info.las_version == truth["las_version"]
    assert info.point_format == truth["point_format"]
    assert info.point_count == truth["point_count"]
    assert info.point_record_length == truth["extra"]["point_data_record_length"]
    assert _close(info.scales, truth["scales"])
    assert _close(info.offsets, truth["offsets"])
    assert _close(info.mins, truth["mins"])
    assert _close(info.maxs, truth["maxs"])
    assert meta.bbox_native == (info.mins[0], info.mins[1], info.maxs[0], info.maxs[1])
    assert meta.crs_code == _expected_code(truth)
    assert meta.crs_wkt2.strip()
    if info.copc:  # where the points read are: inside the header box
        west, south, east, north = truth["bounds_4326"]
        # ... but for the 1 % of a cell (at least 4 a side) kept around the outermost points
        slack = 1e-6 + max(east - west, north - south) / 400
        assert west - slack <= meta.bbox_4326[0] <= meta.bbox_4326[2] <= east + slack
        assert south - slack <= meta.bbox_4326[1] <= meta.bbox_4326[3] <= north + slack
    else:
        assert _close_deg(meta.bbox_4326, truth["bounds_4326"])
    assert info.copc == truth["extra"]["is_copc"]
    assert info.compressed == truth["extra"]["is_compressed"]


@pytest.mark.parametrize("name", GOOD)
def test_good_file_record_fields(name: str, testdata: Path, expected: dict) -> None:
    extra = expected[name]["extra"]
    meta = extract_pointcloud(str(testdata / name))  # a str path works as well as a Path
    info = meta.pointcloud
    assert info is not None
    encoding, media = {
        (False, False): ("LAS", "application/vnd.las"),
        (True, False): ("LASzip", "application/vnd.laszip"),
        (True, True): ("COPC", "application/vnd.laszip+copc"),
    }[(extra["is_compressed"], extra["is_copc"])]
    assert (info.encoding, meta.media_type) == (encoding, media)
    created = extra["creation_date"]
    if created is None or created < "1990":  # simple.copc.laz says year 1: not a date
        assert meta.datetime is None
    else:
        assert meta.datetime == f"{created}T00:00:00Z"
    assert [s["name"] for s in info.schemas[:3]] == ["X", "Y", "Z"]
    # Always an area, even for one point (1.0_0.las): about one quantisation step wide, it
    # covers the point however the catalog rounds, where a Point would have to match it.
    assert meta.geometry_4326["type"] in ("Polygon", "MultiPolygon")
    assert AssetMeta.from_json(meta.to_json()) == meta


def test_schemas_follow_the_pointcloud_extension(testdata: Path, schema_root: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = schema_root / "stac-extensions.github.io/pointcloud/v2.0.0/schema.json"
    definition = json.loads(path.read_text())["definitions"]["schema"]
    for name in ("fullwave.laz", "simple.copc.laz", "1.0_0.las"):
        schemas = extract_pointcloud(testdata / name).pointcloud.schemas
        for entry in schemas:
            jsonschema.validate(entry, definition)
    by_name = {
        s["name"]: s for s in extract_pointcloud(testdata / "fullwave.laz").pointcloud.schemas
    }
    assert by_name["X"] == {"name": "X", "size": 4, "type": "signed"}
    assert by_name["gps_time"] == {"name": "gps_time", "size": 8, "type": "floating"}
    assert by_name["return_number"] == {"name": "return_number", "size": 1, "type": "unsigned"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_is_a_clear_error(
    name: str, testdata: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == GARBAGE:
        # Never let laspy near this one in-process: it would allocate until the OOM killer comes.
        monkeypatch.setattr(laspy, "open", _refuse)
    with pytest.raises(ExtractError) as caught:
        extract_pointcloud(testdata / name)
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert BAD[name] in message


@pytest.mark.parametrize("name", [GARBAGE, "truncated_autzen_trim.laz", "1.2-no-points.las"])
def test_size_checks_run_before_laspy(name: str, testdata: Path, laspy_forbidden: None) -> None:
    with pytest.raises(ExtractError, match=r"VLRs|truncated"):
        extract_pointcloud(testdata / name)


def test_garbage_vlr_count_under_memory_cap(testdata: Path) -> None:
    """In a child capped at 4 GiB of address space, the guard answers without a big allocation."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from stacsync.core.errors import ExtractError
        from stacsync.extract.pointcloud import extract_pointcloud
        try:
            extract_pointcloud({str(testdata / GARBAGE)!r})
        except ExtractError as exc:
            print(exc)
            sys.exit(0)
        sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "header claims 1069128089 VLRs" in done.stdout


def test_decoding_really_is_patched_out(testdata: Path) -> None:
    with pytest.raises(AssertionError, match="decoded"):
        laspy.read(testdata / "simple.laz")


class CountingReader(io.RawIOBase):
    """A seekable binary stream that counts the bytes handed out."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def read(self, n: int = -1) -> bytes:
        chunk = self._inner.read(n)
        self.bytes_read += len(chunk)
        return chunk


@pytest.mark.parametrize("name", ["autzen_trim.laz", "1_4_w_evlr.laz", "simple.copc.laz"])
def test_reads_only_header_vlrs_and_pointers(name: str, testdata: Path, expected: dict) -> None:
    data = (testdata / name).read_bytes()
    (offset,) = struct.unpack_from("<I", data, 96)
    stream = CountingReader(data)
    meta = extract_pointcloud_stream(stream, len(data), name)
    assert meta.pointcloud.point_count == expected[name]["point_count"]
    # fixed header + header/VLR block + chunk-table pointer + a few EVLR headers (+ CRS EVLRs)
    budget = 375 + offset + 8 + 4096
    if meta.pointcloud.copc:  # + the root hierarchy page and the coarse nodes it names
        budget += _copc_sample_bytes(data, meta.footprint_method)
    assert stream.bytes_read <= budget, (stream.bytes_read, len(data))


def _copc_sample_bytes(data: bytes, method: str) -> int:
    """Bytes of the COPC root hierarchy page and of the nodes of the levels `method` names."""
    deepest = int(method.split("level")[1].split("(")[0].split("-")[-1])
    with laspy.open(io.BytesIO(data)) as reader:
        info = reader.header.vlrs.get_by_id("copc", [1])[0]
    page = data[info.hierarchy_root_offset : info.hierarchy_root_offset + info.hierarchy_root_size]
    nodes = [struct.unpack_from("<4iQii", page, at) for at in range(0, len(page), 32)]
    chosen = sum(size for level, *_, size, count in nodes if level <= deepest and count > 0)
    return len(page) + chosen


# --- lying or broken headers, made by patching copies of real files -----------------------------


def _patched(testdata: Path, tmp_path: Path, name: str, *patches: tuple[int, str, object]) -> Path:
    data = bytearray((testdata / name).read_bytes())
    for offset, fmt, value in patches:
        struct.pack_into(fmt, data, offset, *(value if isinstance(value, tuple) else (value,)))
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


# Byte offsets in the LAS public header.
_N_VLRS, _MAX_X, _MIN_X, _MAX_Y, _MIN_Y, _DAY = 100, 179, 187, 195, 203, 90


def test_empty_file(tmp_path: Path, laspy_forbidden: None) -> None:
    path = tmp_path / "x.las"
    path.write_bytes(b"")
    with pytest.raises(ExtractError, match=r"^x\.las: file is empty$"):
        extract_pointcloud(path)


def test_text_file_renamed_las(tmp_path: Path, laspy_forbidden: None) -> None:
    path = tmp_path / "points.laz"
    path.write_text("x,y,z\n1,2,3\n" * 40)
    with pytest.raises(ExtractError, match=r"^points\.laz: not a LAS/LAZ file \(bad signature\)$"):
        extract_pointcloud(path)


def test_header_cut_short(testdata: Path, tmp_path: Path, laspy_forbidden: None) -> None:
    path = tmp_path / "short.las"
    path.write_bytes((testdata / "simple.las").read_bytes()[:120])
    with pytest.raises(ExtractError, match=r"^short\.las: file is truncated"):
        extract_pointcloud(path)


def test_vlr_count_beyond_point_offset(testdata: Path, tmp_path: Path) -> None:
    path = _patched(testdata, tmp_path, "autzen-utm.las", (_N_VLRS, "<I", 40))
    with pytest.raises(ExtractError, match=r"header claims 40 VLRs, more than fit"):
        extract_pointcloud(path)


def test_vlr_running_into_point_data(testdata: Path, tmp_path: Path) -> None:
    data = (testdata / "autzen-utm.las").read_bytes()
    header_size, offset = struct.unpack_from("<HI", data, 94)
    # the first VLR's record length: make it run past the start of the points
    path = _patched(testdata, tmp_path, "autzen-utm.las", (header_size + 20, "<H", offset))
    with pytest.raises(ExtractError, match=r"VLR 1 of 4 .*runs past the start of the point data"):
        extract_pointcloud(path)


def test_laz_without_laszip_vlr(testdata: Path, tmp_path: Path) -> None:
    data = bytearray((testdata / "autzen_trim.laz").read_bytes())
    at = data.index(b"laszip encoded")
    data[at : at + 6] = b"LASZIP"
    path = tmp_path / "nolaszip.laz"
    path.write_bytes(bytes(data))
    with pytest.raises(
        ExtractError, match=r"^nolaszip\.laz: compressed point format but no LASzip"
    ):
        extract_pointcloud(path)


def test_laz_chunk_table_outside_file(testdata: Path, tmp_path: Path) -> None:
    data = (testdata / "autzen_trim.laz").read_bytes()
    (offset,) = struct.unpack_from("<I", data, 96)
    path = _patched(testdata, tmp_path, "autzen_trim.laz", (offset, "<q", len(data) + 100))
    with pytest.raises(ExtractError, match=r"file is truncated \(LAZ chunk table"):
        extract_pointcloud(path)


def test_evlrs_outside_file(testdata: Path, tmp_path: Path) -> None:
    size = (testdata / "1_4_w_evlr.laz").stat().st_size
    path = _patched(testdata, tmp_path, "1_4_w_evlr.laz", (235, "<Q", size - 10))
    with pytest.raises(ExtractError, match=r"EVLRs from offset .* do not fit"):
        extract_pointcloud(path)


def test_geographic_crs_with_latitude_100(testdata: Path, tmp_path: Path) -> None:
    path = _patched(testdata, tmp_path, "epsg_4326.las", (_MAX_Y, "<d", 100.0))
    with pytest.raises(ExtractError, match=r"latitudes \[31\.\d+, 100\.0\] are outside ±90"):
        extract_pointcloud(path)


def test_inverted_header_box(testdata: Path, tmp_path: Path) -> None:
    path = _patched(
        testdata, tmp_path, "autzen-utm.las", (_MAX_X, "<d", 493000.0), (_MIN_X, "<d", 494000.0)
    )
    with pytest.raises(ExtractError, match=r"header bounds are inverted \(X min"):
        extract_pointcloud(path)


def test_nan_in_header_box(testdata: Path, tmp_path: Path) -> None:
    path = _patched(testdata, tmp_path, "autzen-utm.las", (_MIN_Y, "<d", math.nan))
    with pytest.raises(ExtractError, match=r"not finite"):
        extract_pointcloud(path)


def test_implausible_creation_date_is_dropped_with_a_warning(
    testdata: Path, tmp_path: Path
) -> None:
    path = _patched(testdata, tmp_path, "test1_4.las", (_DAY, "<HH", (45, 2999)))
    meta = extract_pointcloud(path)
    assert meta.datetime is None
    assert any("creation date" in w for w in meta.warnings)
    ok = _patched(testdata, tmp_path, "fullwave.laz", (_DAY, "<HH", (32, 2020)))
    assert extract_pointcloud(ok).datetime == "2020-02-01T00:00:00Z"


def test_compound_crs_footprint_uses_horizontal_part(testdata: Path, expected: dict) -> None:
    meta = extract_pointcloud(testdata / "autzen-bmx-2010.las")
    assert meta.crs_code is None  # compound without an EPSG code: proj:wkt2 carries it
    assert "NAVD88" in meta.crs_wkt2
    assert _close_deg(meta.bbox_4326, expected["autzen-bmx-2010.las"]["bounds_4326"])


def test_feet_labelled_as_metres_warns(testdata: Path) -> None:
    """simple.copc.laz holds Oregon-Lambert-feet numbers under a metre CRS: it lands in Canada."""
    meta = extract_pointcloud(testdata / "simple.copc.laz")
    assert any("outside the area of use" in w for w in meta.warnings)


# --- crs_override -------------------------------------------------------------------------------


def test_crs_override_on_file_without_crs(testdata: Path, expected: dict) -> None:
    meta = extract_pointcloud(testdata / "simple.las", crs_override="EPSG:2994")
    assert meta.crs_code == "EPSG:2994"
    truth = expected["simple.las"]
    wanted = pyproj.Transformer.from_crs("EPSG:2994", "EPSG:4326", always_xy=True).transform_bounds(
        truth["mins"][0], truth["mins"][1], truth["maxs"][0], truth["maxs"][1], densify_pts=21
    )
    assert _close_deg(meta.bbox_4326, wanted)
    assert meta.warnings == ("no CRS in the file; configured crs 'EPSG:2994' assumed",)


def test_crs_override_is_never_4326_by_default(testdata: Path) -> None:
    """Guessing EPSG:4326 for projected numbers must fail loudly, not make a footprint."""
    with pytest.raises(ExtractError, match=r"^simple\.las: geographic CRS but header latitudes"):
        extract_pointcloud(testdata / "simple.las", crs_override="EPSG:4326")


def test_crs_override_replaces_a_broken_crs_with_a_warning(testdata: Path) -> None:
    meta = extract_pointcloud(testdata / "warsaw_small.las", crs_override="EPSG:2180")
    assert meta.crs_code == "EPSG:2180"
    assert 20 < meta.bbox_4326[0] < 22 and 52 < meta.bbox_4326[1] < 53  # Warsaw
    assert any("invalid CRS in WKT VLR" in w for w in meta.warnings)


def test_crs_override_never_replaces_a_valid_file_crs(testdata: Path) -> None:
    meta = extract_pointcloud(testdata / "autzen-utm.las", crs_override="EPSG:32610")
    assert meta.crs_code == "EPSG:26910"
    assert not any("configured crs" in w for w in meta.warnings)


def test_geocentric_crs_over_projected_numbers(testdata: Path) -> None:
    with pytest.raises(ExtractError, match=r"^simple\.las: geocentric CRS but the header box"):
        extract_pointcloud(testdata / "simple.las", crs_override="EPSG:4978")


def test_bad_crs_override(testdata: Path) -> None:
    with pytest.raises(ExtractError, match=r"^simple\.las: invalid crs_override 'EPSG:999999'"):
        extract_pointcloud(testdata / "simple.las", crs_override="EPSG:999999")


# --- I/O errors ---------------------------------------------------------------------------------


class FailingReader(CountingReader):
    """Raises the given OSError on the n-th read, as a flaky FUSE mount does."""

    def __init__(self, data: bytes, exc: OSError, fail_at: int = 1) -> None:
        super().__init__(data)
        self._exc, self._fail_at, self._reads = exc, fail_at, 0

    def read(self, n: int = -1) -> bytes:
        self._reads += 1
        if self._reads >= self._fail_at:
            raise self._exc
        return super().read(n)


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_transient_remote_io_error_propagates(testdata: Path, fail_at: int) -> None:
    data = (testdata / "autzen_trim.laz").read_bytes()
    stream = FailingReader(data, OSError(errno.EREMOTEIO, "Remote I/O error"), fail_at)
    with pytest.raises(OSError) as caught:
        extract_pointcloud_stream(stream, len(data), "autzen_trim.laz")
    assert caught.value.errno == errno.EREMOTEIO
    assert not isinstance(caught.value, ExtractError)


def test_permanent_read_error_becomes_extract_error(testdata: Path) -> None:
    data = (testdata / "simple.las").read_bytes()
    stream = FailingReader(data, OSError(errno.EINVAL, "Invalid argument"))
    with pytest.raises(ExtractError, match=r"^simple\.las: cannot read file \(Invalid argument\)"):
        extract_pointcloud_stream(stream, len(data), "simple.las")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match=r"^gone\.laz: file not found$"):
        extract_pointcloud(tmp_path / "gone.laz")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.las").mkdir()
    with pytest.raises(ExtractError, match=r"^dir\.las: is a directory"):
        extract_pointcloud(tmp_path / "dir.las")


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EIO, "Input/output error"), errno.EIO),
        (OSError(errno.ESTALE, "Stale file handle"), errno.ESTALE),
    ],
)
def test_open_errors(
    exc: OSError, outcome: str | int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_open(*_args, **_kwargs):
        raise exc

    # Running as root defeats chmod 000, so fail the open itself.
    monkeypatch.setattr(pc, "open", failing_open, raising=False)
    if isinstance(outcome, str):
        with pytest.raises(ExtractError, match=rf"^a\.las: {outcome}$"):
            extract_pointcloud(tmp_path / "a.las")
    else:
        with pytest.raises(OSError) as caught:
            extract_pointcloud(tmp_path / "a.las")
        assert caught.value.errno == outcome


def test_geocentric_cloud_on_the_earth(testdata: Path, tmp_path: Path) -> None:
    """A real Earth-centred box (here over Autzen, Oregon) gets a footprint from its corners."""
    to_ecef = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    x, y, z = to_ecef.transform(-123.07, 44.05, 100.0)
    box = ((_MIN_X, x - 50), (_MAX_X, x + 50), (_MIN_Y, y - 50), (_MAX_Y, y + 50))
    box += ((219, z - 50), (211, z + 50))  # min z, max z
    path = _patched(testdata, tmp_path, "simple.las", *((at, "<d", v) for at, v in box))
    meta = extract_pointcloud(path, crs_override="EPSG:4978")
    west, south, east, north = meta.bbox_4326
    assert meta.crs_code == "EPSG:4978"
    assert -123.08 < west < -123.07 < east < -123.06 and 44.04 < south < 44.05 < north < 44.06


def test_crs_in_an_evlr_is_found(tmp_path: Path) -> None:
    """LAS 1.4 may keep its WKT in an EVLR after the points; only that record is read."""
    wkt = pyproj.CRS("EPSG:32611").to_wkt()
    las = laspy.create(point_format=6, file_version="1.4")
    las.header.offsets = [500000.0, 4000000.0, 0.0]
    las.header.scales = [0.01, 0.01, 0.01]
    las.x = np.array([500000.0, 500100.0])
    las.y = np.array([4000000.0, 4000100.0])
    las.z = np.array([1.0, 2.0])
    las.header.global_encoding.wkt = True
    las.evlrs = VLRList([WktCoordinateSystemVlr(wkt)])
    path = tmp_path / "evlr_crs.las"
    las.write(path)
    assert not las.header.vlrs and path.read_bytes().rstrip(b"\0").endswith(wkt.encode())
    meta = extract_pointcloud(path)
    assert meta.crs_code == "EPSG:32611"
    assert meta.pointcloud.point_count == 2
    assert _close(meta.bbox_native, (500000.0, 4000000.0, 500100.0, 4000100.0))
