"""Every point of every point cloud lies inside its item's geometry: measured, not assumed.

A real quick rescan of every LAS/LAZ/COPC file in ../shared/testdata (and of files written here
with laspy), then every point — tests may read them all, stacsync never does — transformed to
EPSG:4326 with the CRS stacsync recorded and tested with shapely's `covers`, both against the
footprint extracted (the manifest's AssetMeta, before the catalog rounds it) and against the
published item's geometry.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import os
import shutil
import struct
from pathlib import Path

import laspy
import lazrs
import numpy as np
import pyproj
import pytest
import shapely
from laspy.vlrs.vlr import VLR
from shapely.geometry import shape

from stacsync.core.ids import item_id
from stacsync.core.records import AssetMeta
from stacsync.extract import las_footprint
from stacsync.extract.copc import CopcSample, read_copc_sample
from stacsync.extract.las_footprint import _occupied_cells, cover_4326, positions
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan

# Float noise only: 1e-10° is about 11 µm on the ground.
NOISE_DEG = 1e-10
SUFFIXES = (".las", ".laz")


def _rescan(src: Path, tmp_path: Path) -> dict[str, tuple[AssetMeta, dict]]:
    """Quick rescan of `src`: file name -> (extracted AssetMeta, published item geometry)."""
    for path in src.iterdir():  # older than the racy-mtime window, as files on a store are
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))
    out, db = tmp_path / "catalog", tmp_path / "stacsync.db"
    rescan(source=src, output=out, manifest=db)
    found = {}
    with Manifest.open_reader(db) as manifest:
        rows = manifest.conn.execute(
            "SELECT path, meta_json FROM asset_file WHERE status = 'ok' AND meta_json IS NOT NULL"
        ).fetchall()
    for path, meta_json in rows:
        name = Path(path.decode() if isinstance(path, bytes) else path).name
        meta = AssetMeta.from_json(meta_json)
        if meta.kind != "pointcloud":
            continue
        (item_path,) = out.rglob(f"*{item_id(name)}.json")
        found[name] = (meta, json.loads(item_path.read_text())["geometry"])
    return found


def _lonlat(path: Path, meta: AssetMeta) -> tuple[np.ndarray, np.ndarray]:
    """Every point of the file in EPSG:4326, through the CRS stacsync recorded."""
    las = laspy.read(path)
    crs = pyproj.CRS.from_wkt(meta.crs_wkt2)
    while crs.is_compound:  # lon/lat come from the horizontal part
        crs = crs.sub_crs_list[0]
    to_4326 = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_4326.transform(np.asarray(las.x), np.asarray(las.y))
    return np.asarray(lon), np.asarray(lat)


def _outside(geometry: dict, lon: np.ndarray, lat: np.ndarray) -> tuple[int, float]:
    """How many points the geometry misses by more than float noise, and the worst miss (°)."""
    polygon = shape(geometry)
    points = shapely.points(lon, lat)
    missed = ~shapely.covers(polygon, points)
    if not missed.any():
        return 0, 0.0
    distance = shapely.distance(polygon, points[missed])
    return int((distance > NOISE_DEG).sum()), float(distance.max())


def _assert_covered(src: Path, found: dict[str, tuple[AssetMeta, dict]]) -> None:
    problems = []
    for name, (meta, item_geometry) in sorted(found.items()):
        lon, lat = _lonlat(src / name, meta)
        assert meta.geometry_4326["type"] in ("Polygon", "MultiPolygon"), name
        assert positions(meta.geometry_4326) <= 2000, name
        for what, geometry in (("footprint", meta.geometry_4326), ("item", item_geometry)):
            count, worst = _outside(geometry, lon, lat)
            if count:
                problems.append(f"{name}: {what} misses {count} points, by up to {worst:.3g}°")
    assert not problems, problems


# --- the real files -------------------------------------------------------------------------


def test_every_real_point_cloud_is_covered(testdata: Path, expected: dict, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted(testdata.iterdir()):
        if path.suffix in SUFFIXES:
            shutil.copyfile(path, src / path.name)
    found = _rescan(src, tmp_path)
    # Every point cloud the ground truth places on the Earth gets an item here, but for those
    # stacsync refuses on purpose (see test_extract_pointcloud.BAD), skipped with the reason.
    placed = {
        n
        for n, f in expected.items()
        if f.get("kind") == "pointcloud" and f.get("bounds_4326") and f.get("point_count")
    }
    refused = {
        "warsaw_small.las": "its WKT VLR is empty: no CRS to transform the points with",
        "simple.las": "no CRS in the file",
        "simple.laz": "no CRS in the file",
        "plane.laz": "user-defined GeoTIFF keys: no CRS laspy can read",
        "simple1_3.las": "the header box cannot be stored at the file's scale: a wrong header",
        "truncated_autzen_trim.laz": "truncated before its point data: no points to read",
    }
    assert set(found) == placed - set(refused)
    assert {"simple.copc.laz", "autzen_clip_4326.copc.laz"} <= set(found)
    for name in ("simple.copc.laz", "autzen_clip_4326.copc.laz"):
        assert found[name][0].footprint_method.startswith("COPC octree level")
    _assert_covered(src, found)


# --- files written here -----------------------------------------------------------------------


def _write(path: Path, x, y, crs: str, *, scale: float = 0.01, mins=None, maxs=None) -> None:
    """A LAS 1.4 file of the points; `mins`/`maxs` overwrite the header box (lying writers)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    las = laspy.create(point_format=6, file_version="1.4")
    las.header.scales = [scale, scale, 0.01]
    las.header.offsets = [float(np.floor(x.min())), float(np.floor(y.min())), 0.0]
    las.header.add_crs(pyproj.CRS(crs))
    las.x, las.y, las.z = x, y, np.zeros_like(x)
    las.update_header()
    if mins is not None:
        las.header.mins = np.array([*mins, 0.0])
    if maxs is not None:
        las.header.maxs = np.array([*maxs, 0.0])
    las.write(path, do_compress=path.suffix == ".laz")


def _edges(minx: float, miny: float, maxx: float, maxy: float, n: int = 400):
    """Points exactly on the four edges of a box, corners included."""
    t = np.linspace(0.0, 1.0, n)
    x = np.concatenate([minx + t * (maxx - minx), np.full(n, maxx), maxx - t * (maxx - minx)])
    y = np.concatenate([np.full(n, miny), miny + t * (maxy - miny), np.full(n, maxy)])
    return np.append(x, np.full(n, minx)), np.append(y, maxy - t * (maxy - miny))


def test_generated_clouds_are_covered(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # One point, and two a centimetre apart.
    _write(src / "one_point.las", [500000.0], [5000000.0], "EPSG:32633")
    _write(src / "two_points.laz", [500000.0, 500000.01], [5000000.0, 5000000.01], "EPSG:32633")
    # Points on the edges of a 60 km box far from the central meridian at 64° N: its edges
    # are curves in lon/lat, bowing by metres between corners.
    _write(src / "edges_utm.las", *_edges(640000.0, 7100000.0, 700000.0, 7160000.0), "EPSG:32633")
    # ... in a CRS in US feet, at a scale of 0.001
    _write(
        src / "edges_feet.laz",
        *_edges(1_300_000.0, 600_000.0, 1_500_000.0, 800_000.0),
        "EPSG:2994",
        scale=0.001,
    )
    # ... in lon/lat, where degrees carry 7 decimals
    _write(src / "edges_4326.las", *_edges(8.5, 47.3, 8.6, 47.4), "EPSG:4326", scale=1e-7)
    # ... across the antimeridian (UTM zone 60 reaches past 180° E here)
    _write(
        src / "edges_dateline.las", *_edges(780000.0, 100000.0, 880000.0, 200000.0), "EPSG:32660"
    )
    # A thin diagonal strip 20 km long and 2 m wide.
    t = np.linspace(0.0, 1.0, 5000)
    strip_x = 400000.0 + 20000.0 * t + np.tile([0.0, 2.0], 2500)
    _write(src / "strip.las", strip_x, 5200000.0 + 20000.0 * t, "EPSG:32632")
    # A writer that stored the unquantised box: points up to half a step outside it.
    x, y = _edges(500000.0, 4000000.0, 500100.0, 4000100.0, n=50)
    _write(
        src / "lying_box.las",
        x,
        y,
        "EPSG:32611",
        mins=(500000.004, 4000000.004),
        maxs=(500099.996, 4000099.996),
    )
    found = _rescan(src, tmp_path)
    assert set(found) == {p.name for p in src.iterdir()}
    assert found["edges_dateline.las"][0].geometry_4326["type"] == "MultiPolygon"
    _assert_covered(src, found)


# --- COPC files written here -----------------------------------------------------------------


def _levels(n: int, depth: int, seed: int = 7) -> np.ndarray:
    """Octree levels as COPC writers fill them: each level about four times the one above."""
    rng = np.random.default_rng(seed)
    return depth - np.minimum(rng.geometric(0.75, n) - 1, depth)


def _write_copc(path: Path, x: np.ndarray, y: np.ndarray, crs: str, depth: int = 6) -> int:
    """A COPC file of the points (z = 0), one LAZ chunk per octree node; returns the node count.

    laspy writes the header, the VLRs (a COPC info VLR first) and the points in node order;
    the points are then compressed again one chunk per node, and the hierarchy page is added
    as an EVLR, its place written into the COPC info VLR.
    """
    level = _levels(x.size, depth)
    minx, miny = float(x.min()), float(y.min())
    half = max(float(x.max()) - minx, float(y.max()) - miny) / 2.0 + 0.01
    side = 2.0 * half / 2.0**level
    cols = np.clip(np.floor((x - minx) / side), 0, 2**level - 1).astype(np.int64)
    rows = np.clip(np.floor((y - miny) / side), 0, 2**level - 1).astype(np.int64)
    order = np.lexsort((rows, cols, level))
    las = laspy.create(point_format=6, file_version="1.4")
    las.header.scales = [0.01, 0.01, 0.01]
    las.header.offsets = [float(np.floor(minx)), float(np.floor(miny)), 0.0]
    las.header.add_crs(pyproj.CRS(crs))
    las.header.vlrs.insert(0, VLR("copc", 1, "copc info", bytes(160)))
    las.x, las.y, las.z = x[order], y[order], np.zeros(x.size)
    out = io.BytesIO()
    las.write(out, do_compress=True)
    data = bytearray(out.getvalue())
    (point_offset,) = struct.unpack_from("<I", data, 96)
    laszip = lazrs.LazVlr.new_for_compression(6, 0, True)  # variable-size chunks
    at = data.index(b"laszip encoded") + 52  # the LASzip VLR's record data
    data[at : at + len(laszip.record_data())] = laszip.record_data()
    keys = np.column_stack([level, cols, rows])[order]
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1), True])
    raw, size = las.points.array.tobytes(), las.header.point_format.size
    chunks = io.BytesIO()
    compressor = lazrs.LasZipCompressor(chunks, laszip)
    compressor.reserve_offset_to_chunk_table()
    for a, b in itertools.pairwise(starts):
        compressor.compress_many(raw[a * size : b * size])
        compressor.finish_current_chunk()
    compressor.done()
    table = [c for c in lazrs.read_chunk_table(io.BytesIO(chunks.getvalue()), laszip) if c[0]]
    points = bytearray(chunks.getvalue())
    struct.pack_into("<q", points, 0, struct.unpack_from("<q", points)[0] + point_offset)
    page, offset = b"", point_offset + 8
    for a, (count, nbytes) in zip(starts[:-1], table, strict=True):
        lv, i, j = (int(v) for v in keys[a])
        page += struct.pack("<4iQii", lv, i, j, 2**lv // 2, offset, nbytes, count)
        offset += nbytes
    evlr_at = point_offset + len(points)
    evlr = struct.pack("<H16sHQ32s", 0, b"copc", 1000, len(page), b"hierarchy")
    result = data[:point_offset] + points + evlr + page
    struct.pack_into("<QI", result, 235, evlr_at, 1)  # start of the first EVLR, EVLR count
    info = result.index(b"copc\0") + 52  # the COPC info VLR's record data
    center = (minx + half, miny + half, 0.0)
    struct.pack_into("<5d2Q", result, info, *center, half, 1.0, evlr_at + 60, len(page))
    path.write_bytes(bytes(result))
    return len(table)


def test_generated_copc_strip_is_covered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thin diagonal strip in COPC: decoded whole, and with most of it left as node cubes."""
    t = np.linspace(0.0, 1.0, 20000)
    x = np.round(600000.0 + 5000.0 * t + 3.0 * np.sin(t * 400.0), 2)
    y = np.round(5100000.0 + 5000.0 * t, 2)
    for budget in (None, 1500):
        src = tmp_path / f"src{budget}"
        src.mkdir()
        assert _write_copc(src / "strip.copc.laz", x, y, "EPSG:32631") > 100
        if budget:  # decode levels 0-4 only: levels 5 and 6 stand as their cubes
            limited = functools.partial(read_copc_sample, max_points=budget)
            monkeypatch.setattr(las_footprint, "read_copc_sample", limited)
        found = _rescan(src, tmp_path / f"out{budget}")
        meta = found["strip.copc.laz"][0]
        assert meta.pointcloud.copc
        cells = "level-7 cells" if budget is None else "level-5 cells"
        assert meta.footprint_method.endswith(cells), meta.footprint_method
        lon, lat = _lonlat(src / "strip.copc.laz", meta)
        assert len(lon) == x.size
        _assert_covered(src, found)
        # far tighter than the 5 km × 5 km header box
        envelope = shapely.envelope(shapely.multipoints(np.column_stack([lon, lat])))
        ratio = shape(meta.geometry_4326).area / envelope.area
        print(f"strip.copc.laz, budget {budget}: {meta.footprint_method}; area/box {ratio:.3f}")
        assert ratio < 0.4


# --- a COPC octree, its geometry only ---------------------------------------------------------


def _octree_sample(x: np.ndarray, y: np.ndarray, depth: int, decoded: int) -> CopcSample:
    """The points spread over an octree's levels (see `_levels`), levels 0..`decoded` decoded
    and the deeper ones as the nodes that hold them: their points lie anywhere in the cubes."""
    minx, miny = float(x.min()), float(y.min())
    halfsize = max(float(x.max()) - minx, float(y.max()) - miny) / 2.0
    center = (minx + halfsize, miny + halfsize)
    level = _levels(x.size, depth)
    keep = level <= decoded
    nodes = set()
    for lv in range(decoded + 1, depth + 1):
        side = 2 * halfsize / 2**lv
        at = level == lv
        i = np.clip(np.floor((x[at] - minx) / side), 0, 2**lv - 1).astype(int)
        j = np.clip(np.floor((y[at] - miny) / side), 0, 2**lv - 1).astype(int)
        nodes |= {(lv, a, b) for a, b in zip(i, j, strict=True)}
    return CopcSample(
        x=x[keep],
        y=y[keep],
        deepest=decoded,
        nodes=np.asarray(sorted(nodes), dtype=np.int64).reshape(-1, 3),
        center=center,
        halfsize=halfsize,
        hierarchy_bytes=32 * (len(nodes) + 1),
        node_bytes=0,
    )


class _Header:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.mins = (float(x.min()), float(y.min()), 0.0)
        self.maxs = (float(x.max()), float(y.max()), 0.0)
        self.scales = (0.01, 0.01, 0.01)


@pytest.mark.parametrize("decoded", [0, 2, 4])
def test_octree_cells_cover_a_diagonal_strip(decoded: int) -> None:
    """Points of deeper nodes lie anywhere in their cubes; the cells one level below the
    decoded ones still hold every point, and the polygon stays far smaller than the box."""
    t = np.linspace(0.0, 1.0, 20000)
    x = np.round(600000.0 + 5000.0 * t + 3.0 * np.sin(t * 400.0), 2)
    y = np.round(5100000.0 + 5000.0 * t, 2)
    sample = _octree_sample(x, y, depth=7, decoded=decoded)
    h = _Header(x, y)
    region = _occupied_cells(sample, h, decoded + 1)
    _bbox, geometry = cover_4326(region, pyproj.CRS("EPSG:32631").to_wkt(), 0.005)
    lon, lat = pyproj.Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True).transform(
        x, y
    )
    assert _outside(geometry, np.asarray(lon), np.asarray(lat)) == (0, 0.0)
    box_area = (h.maxs[0] - h.mins[0]) * (h.maxs[1] - h.mins[1])
    if decoded >= 2:  # 8 × 8 cells or finer: a diagonal's cells are a fraction of the box
        assert region.area < 0.5 * box_area
    assert positions(geometry) <= 2000
