"""Write a synthetic Open Forest Observatory tree: COGs, LAZ point clouds and a GeoPackage.

Real file formats made by our own code, so demos, tests and benchmarks need no downloads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import laspy
import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import rasterio
import shapely
from rasterio.enums import ColorInterp
from rasterio.transform import Affine

RASTER_NAMES = (
    "orthomosaic",
    "chm-mesh",
    "chm-ptcloud",
    "dsm-mesh",
    "dsm-ptcloud",
    "dtm-ptcloud",
)
ASSET_FILES = (*(f"{name}.tif" for name in RASTER_NAMES), "points.laz")
TABLE_PATH = "metadata/all-mission-polygons-w-metadata.gpkg"
TABLE_LAYER = "all-mission-polygons-w-metadata"
MATCH = r"missions/(?P<item>\d{6})/processed[^/]*/full/(?P<asset>[^/]+)\.(tif|laz)$"
PROCESSED = "processed_01/full"
FIRST_ID = 101
NODATA = -9999.0
# GeoPackage writers stamp "now" into gpkg_contents; a fixed stamp keeps the bytes stable.
_FIXED_GPKG_DATE = "2024-01-01T00:00:00Z"

# (name, lon, lat, ground elevation in m): forest sites of the Sierra Nevada and Cascades,
# spanning UTM zones 10 and 11 so both CRSs occur.
_SITES = (
    ("Blodgett Forest", -120.66, 38.91, 1300.0),
    ("Sagehen Creek", -120.24, 39.43, 1900.0),
    ("Stanislaus NF", -119.80, 37.90, 1700.0),
    ("Sequoia NP", -118.75, 36.56, 2000.0),
    ("Lassen NF", -121.06, 40.14, 1600.0),
    ("Plumas NF", -120.90, 39.90, 1400.0),
    ("Shaver Lake", -119.25, 37.10, 1650.0),
    ("Eldorado NF", -120.10, 38.80, 1500.0),
)
_SENSORS = (
    ("P4RTK integrated camera", "DJI GS RTK"),
    ("P4A integrated camera", "Map Pilot"),
    ("M3E integrated RGB camera", "DJI Pilot 2 (integrated remote)"),
)
_GRID_SPACING_M = 2000.0  # missions of one site sit on a grid, far enough apart not to overlap


@dataclass(frozen=True)
class DemoTree:
    """What `make_demo_tree` wrote: the source folder, its asset files and metadata table."""

    root: Path  # the source folder
    files: tuple[Path, ...]  # every asset file written (sorted)
    table: Path  # the GeoPackage
    missions: tuple[str, ...]  # 6-digit ids of the missions with files
    table_only: tuple[str, ...] = ()  # ids in the table with no files (the store has such rows)


@dataclass(frozen=True)
class _Mission:
    """Everything random about one mission, drawn up front so files agree with the table."""

    id: str
    epsg: int
    left: float  # upper-left corner of the rasters, in the UTM CRS
    top: float
    pixel: float  # orthomosaic pixel size (m); surface models use twice that
    size: int  # orthomosaic width and height (px)
    when: dt.datetime  # local time of the first photo
    footprint: shapely.Polygon  # the flown area, in the UTM CRS
    sensor: str
    planner: str
    flight_speed: float
    ground: float  # ground elevation at the site (m)
    seed: tuple[int, int]

    @property
    def extent(self) -> float:
        return self.size * self.pixel


def make_demo_tree(
    root: Path, missions: int = 3, *, seed: int = 0, raster_size: int = 256, points: int = 2000
) -> DemoTree:
    """Write an OFO-shaped tree of `missions` missions under `root`; same arguments, same bytes.

    Each mission gets 7 asset files (6 COGs and a LAZ) and a row in the GeoPackage, which also
    holds one extra mission with no files at all.
    """
    if missions < 0 or raster_size < 16 or points < 1:
        raise ValueError("need missions >= 0, raster_size >= 16 and points >= 1")
    root = Path(root)
    plans = [_plan_mission(i, seed, raster_size) for i in range(missions + 1)]
    files: list[Path] = []
    for plan in plans[:-1]:
        files.extend(_write_mission(root, plan, points))
    table = _write_table(root / TABLE_PATH, plans)
    return DemoTree(
        root=root,
        files=tuple(sorted(files)),
        table=table,
        missions=tuple(p.id for p in plans[:-1]),
        table_only=(plans[-1].id,),
    )


def demo_config_toml(tree: DemoTree, output: Path, manifest: Path) -> str:
    """A stacsync TOML config that catalogs `tree` into `output`, remembering it in `manifest`."""
    return f"""\
[source]
path = {_toml_str(tree.root)}

[output]
path = {_toml_str(output)}

[manifest]
path = {_toml_str(manifest)}

[catalog]
id = "ofo-demo"
title = "Open Forest Observatory (demo)"
description = "Synthetic drone products laid out like the Open Forest Observatory store."

[[collection]]
id = "ofo-missions"
title = "Open Forest Observatory drone missions (demo)"
description = "Orthomosaics, surface models and point clouds, one item per drone mission."
license = "CC-BY-4.0"
keywords = ["drone", "forest"]
match = '{MATCH}'

[[collection.providers]]
name = "Open Forest Observatory"
roles = ["producer", "licensor"]
url = "https://openforestobservatory.org"

[collection.table]
path = {_toml_str(TABLE_PATH)}
key = "dataset_id"
datetime = "earliest_datetime_local_derived"
properties = ["sensor_name", "flight_planner_name"]

[collection.properties]
platform = "DJI Phantom 4 RTK"
mission = "Open Forest Observatory demo"
"sci:citation" = "Open Forest Observatory. Synthetic demo missions generated by stacsync."
"""


def _toml_str(value: object) -> str:
    # JSON string escapes are a subset of TOML basic-string escapes, so quotes,
    # backslashes and control characters in paths come out valid.
    return json.dumps(str(value), ensure_ascii=False)


# --- planning -----------------------------------------------------------------------------


def _plan_mission(index: int, seed: int, raster_size: int) -> _Mission:
    """Draw one mission; its own random stream keeps it the same whatever the mission count."""
    rng = np.random.default_rng([seed, index])
    _, lon, lat, ground = _SITES[index % len(_SITES)]
    zone = int((lon + 180) // 6) + 1
    epsg = 32600 + zone
    site_x, site_y = _to_utm(epsg).transform(lon, lat)
    slot = index // len(_SITES)
    pixel = round(float(rng.uniform(0.05, 0.25)), 2)
    extent = raster_size * pixel
    # Snap to the pixel grid as photogrammetry software does.
    left = _snap(site_x + (slot % 10) * _GRID_SPACING_M + rng.uniform(-300, 300), pixel)
    top = _snap(site_y + (slot // 10) * _GRID_SPACING_M + rng.uniform(-300, 300), pixel)
    sensor, planner = _SENSORS[int(rng.integers(len(_SENSORS)))]
    return _Mission(
        id=f"{FIRST_ID + index:06d}",
        epsg=epsg,
        left=left,
        top=top,
        pixel=pixel,
        size=raster_size,
        when=_draw_datetime(rng),
        footprint=_draw_footprint(rng, left, top, extent),
        sensor=sensor,
        planner=planner,
        flight_speed=round(float(rng.uniform(2.5, 12.5)), 2),
        ground=ground + float(rng.uniform(-200, 200)),
        seed=(seed, index),
    )


@cache
def _to_utm(epsg: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(4326, epsg, always_xy=True)


@cache
def _to_wgs84(epsg: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(epsg, 4326, always_xy=True)


def _snap(value: float, step: float) -> float:
    return round(round(value / step) * step, 6)


def _draw_datetime(rng: np.random.Generator) -> dt.datetime:
    """A summer or autumn morning/afternoon flight between 2019 and 2024, whole seconds."""
    day = dt.datetime(int(rng.integers(2019, 2025)), 6, 1)
    return day + dt.timedelta(
        days=int(rng.integers(0, 130)), seconds=int(rng.integers(8 * 3600, 15 * 3600))
    )


def _draw_footprint(
    rng: np.random.Generator, left: float, top: float, extent: float
) -> shapely.Polygon:
    """An irregular star-shaped polygon well inside the raster, so rasters get a nodata border."""
    count = int(rng.integers(6, 11))
    # Evenly spread angles with jitter: random angles can cluster into a sliver.
    step = 2 * np.pi / count
    angles = np.arange(count) * step + rng.uniform(-0.3, 0.3, count) * step
    radii = rng.uniform(0.36, 0.49, count) * extent
    cx, cy = left + extent / 2, top - extent / 2
    return shapely.Polygon(
        np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
    )


# --- surfaces -----------------------------------------------------------------------------


def _grid(plan: _Mission, size: int, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y) of a size × size grid anchored at the mission corner."""
    centres = (np.arange(size) + 0.5) * pixel
    return np.meshgrid(plan.left + centres, plan.top - centres)


def _terrain(
    plan: _Mission, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray
) -> np.ndarray:
    """A tilted, gently rolling ground surface."""
    u, v = xs - plan.left, plan.top - ys
    slope_x, slope_y = rng.uniform(-0.25, 0.25, 2)
    wave = rng.uniform(10, 60, 2)
    bumps = rng.uniform(0.5, 3.0) * np.sin(u / wave[0]) * np.cos(v / wave[1])
    return plan.ground + slope_x * u + slope_y * v + bumps


def _canopy(plan: _Mission, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Tree heights: the upper envelope of paraboloid crowns, a few trees per 100 m²."""
    extent = plan.extent
    count = int(np.clip(extent * extent / 60, 5, 300))
    tx = plan.left + rng.uniform(0, extent, count)
    ty = plan.top - rng.uniform(0, extent, count)
    heights = rng.gamma(3.0, 6.0, count).clip(2, 60)
    radii = 1.0 + 0.12 * heights
    canopy = np.zeros_like(xs)
    for x, y, h, r in zip(tx, ty, heights, radii, strict=True):
        crown = h * (1 - ((xs - x) ** 2 + (ys - y) ** 2) / (r * r))
        np.maximum(canopy, crown, out=canopy)
    return canopy


def _smooth(array: np.ndarray) -> np.ndarray:
    """3×3 mean: a mesh-derived model is smoother than one gridded from points."""
    padded = np.pad(array, 1, mode="edge")
    rows, cols = array.shape
    total = sum(padded[i : i + rows, j : j + cols] for i in range(3) for j in range(3))
    return total / 9


def _surfaces(plan: _Mission) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The five elevation models (nodata outside the footprint), plus bare DTM and canopy."""
    rng = np.random.default_rng([*plan.seed, 1])
    size = (plan.size + 1) // 2
    xs, ys = _grid(plan, size, plan.pixel * 2)
    dtm = _terrain(plan, rng, xs, ys).astype(np.float32)
    canopy = _canopy(plan, rng, xs, ys).astype(np.float32)
    dsm_points = dtm + canopy
    dsm_mesh = _smooth(dsm_points).astype(np.float32)
    models = {
        "dtm-ptcloud": dtm.copy(),  # the point cloud still needs ground under the edge
        "dsm-ptcloud": dsm_points,
        "dsm-mesh": dsm_mesh,
        "chm-ptcloud": dsm_points - dtm,
        "chm-mesh": dsm_mesh - dtm,
    }
    outside = ~shapely.contains_xy(plan.footprint, xs, ys)
    for array in models.values():
        array[outside] = NODATA
    return models, dtm, canopy


def _orthomosaic(plan: _Mission, canopy: np.ndarray) -> np.ndarray:
    """RGB: green-dark crowns over brown ground, with sensor-like noise; 0 outside the footprint."""
    rng = np.random.default_rng([*plan.seed, 2])
    size = plan.size
    height = np.repeat(np.repeat(canopy, 2, axis=0), 2, axis=1)[:size, :size]
    vegetation = np.clip(height / 25, 0, 1)
    base = np.array([150.0, 125.0, 95.0])[:, None, None]  # dry soil and litter
    crowns = np.array([-95.0, -35.0, -55.0])[:, None, None]  # toward dark conifer green
    noise = rng.normal(0, 9, (3, size, size))
    rgb = np.clip(base + crowns * vegetation + noise, 1, 255).astype(np.uint8)
    xs, ys = _grid(plan, size, plan.pixel)
    rgb[:, ~shapely.contains_xy(plan.footprint, xs, ys)] = 0
    return rgb


# --- writers ------------------------------------------------------------------------------


def _write_mission(root: Path, plan: _Mission, points: int) -> list[Path]:
    folder = root / "missions" / plan.id / PROCESSED
    folder.mkdir(parents=True, exist_ok=True)
    models, dtm, canopy = _surfaces(plan)
    written = [_write_cog(folder / "orthomosaic.tif", plan, _orthomosaic(plan, canopy), 0, 1)]
    for name, array in models.items():
        written.append(_write_cog(folder / f"{name}.tif", plan, array[None], NODATA, 2))
    written.append(_write_laz(folder / "points.laz", plan, dtm, canopy, points))
    return written


def _blocksize(size: int) -> int:
    """Tiles of half the raster (16 to 512 px), so even small demo rasters get an overview."""
    block = 16
    while block * 2 <= min(size // 2, 512):
        block *= 2
    return block


def _write_cog(path: Path, plan: _Mission, data: np.ndarray, nodata: float, scale: int) -> Path:
    count, height, width = data.shape
    step = plan.pixel * scale
    profile = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{plan.epsg}",
        "transform": Affine(step, 0, plan.left, 0, -step, plan.top),
        "nodata": nodata,
        "compress": "DEFLATE",
        "blocksize": _blocksize(max(width, height)),
    }
    # GDAL's COG driver warns about tiles under 128 px but writes them, and small tiles are
    # what gives the tiny demo rasters real overviews; keep that warning off the console.
    gdal_log = logging.getLogger("rasterio._env")
    level = gdal_log.level
    gdal_log.setLevel(logging.ERROR)
    try:
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(data)
            dataset.update_tags(TIFFTAG_DATETIME=plan.when.strftime("%Y:%m:%d %H:%M:%S"))
            # What drone software writes: RGB bands say so, elevations are in metres.
            if count == 3:
                dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
            else:
                dataset.units = ("m",) * count
    finally:
        gdal_log.setLevel(level)
    return path


def _sample_footprint(plan: _Mission, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` uniform (x, y) positions inside the footprint, by rejection from its bbox."""
    minx, miny, maxx, maxy = plan.footprint.bounds
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        xy = rng.uniform((minx, miny), (maxx, maxy), (2 * count, 2))
        inside = xy[shapely.contains_xy(plan.footprint, xy[:, 0], xy[:, 1])]
        found.append(inside)
        total += len(inside)
    return np.concatenate(found)[:count]


def _write_laz(path: Path, plan: _Mission, dtm: np.ndarray, canopy: np.ndarray, count: int) -> Path:
    rng = np.random.default_rng([*plan.seed, 3])
    xy = _sample_footprint(plan, rng, count)
    # Index the surface-model grid; clip guards the last cell's edge.
    cell = plan.pixel * 2
    col = np.clip(((xy[:, 0] - plan.left) / cell).astype(int), 0, dtm.shape[1] - 1)
    row = np.clip(((plan.top - xy[:, 1]) / cell).astype(int), 0, dtm.shape[0] - 1)
    tree = canopy[row, col]
    ground_hit = (rng.random(count) < 0.35) | (tree < 0.5)
    z = dtm[row, col] + np.where(
        ground_hit, rng.normal(0, 0.03, count), tree * rng.uniform(0.5, 1.0, count)
    )

    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor([xy[:, 0].min(), xy[:, 1].min(), z.min()])
    header.add_crs(pyproj.CRS.from_epsg(plan.epsg))
    header.creation_date = plan.when.date()
    header.generating_software = "stacsync demo"
    header.system_identifier = "stacsync synthetic"
    las = laspy.LasData(header)
    las.x, las.y, las.z = xy[:, 0], xy[:, 1], z
    las.classification = np.where(ground_hit, 2, 5).astype(np.uint8)
    las.intensity = rng.integers(200, 4000, count, dtype=np.uint16)
    las.return_number = np.ones(count, np.uint8)
    las.number_of_returns = np.ones(count, np.uint8)
    las.gps_time = np.sort(rng.uniform(0, 600, count)) + _gps_seconds(plan.when)
    las.write(path, do_compress=True, laz_backend=laspy.LazBackend.Lazrs)
    return path


def _gps_seconds(when: dt.datetime) -> float:
    """Adjusted standard GPS time (GPS seconds − 1e9), ignoring leap seconds: close enough."""
    return (when - dt.datetime(1980, 1, 6)).total_seconds() - 1e9


def _write_table(path: Path, plans: list[_Mission]) -> Path:
    """One row per mission (the last one without files), polygons in EPSG:4326."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    geometry = np.array([_footprint_wgs84(p) for p in plans], dtype=object)
    columns = {
        "dataset_id": [p.id for p in plans],
        "earliest_datetime_local_derived": [p.when.strftime("%Y-%m-%d %H:%M:%S") for p in plans],
        "latest_datetime_local_derived": [
            (p.when + dt.timedelta(minutes=35)).strftime("%Y-%m-%d %H:%M:%S") for p in plans
        ],
        "sensor_name": [p.sensor for p in plans],
        "flight_planner_name": [p.planner for p in plans],
        "flight_speed_derived": [p.flight_speed for p in plans],
    }
    field_data = [
        np.array(values, dtype=np.float64 if isinstance(values[0], float) else object)
        for values in columns.values()
    ]
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_GPKG_DATE})
    try:
        pyogrio.raw.write(
            path,
            geometry,
            field_data,
            list(columns),
            layer=TABLE_LAYER,
            driver="GPKG",
            geometry_type="MultiPolygon",
            crs="EPSG:4326",
        )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
    return path


def _footprint_wgs84(plan: _Mission) -> bytes:
    """The footprint as WKB in lon/lat; a MultiPolygon, as in the real OFO GeoPackage."""
    transformer = _to_wgs84(plan.epsg)
    lonlat = shapely.transform(
        plan.footprint, lambda x, y: transformer.transform(x, y), interleaved=False
    )
    return shapely.to_wkb(shapely.MultiPolygon([lonlat]))
