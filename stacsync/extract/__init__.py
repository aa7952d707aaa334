"""Header-only metadata extraction: readers that return `AssetMeta` and know nothing of STAC.

`dispatch` picks the reader for a file and runs it with retries (`core.retry`). One module per
format: `raster` (GeoTIFF/COG, with `raster_info`, `tiff`, `streams`, `overview`, `thumbnail`)
and `pointcloud` (LAS/LAZ/COPC, with `las_header`, `las_crs`, `las_footprint`, `copc`).
`crs` names CRSs, `geometry` turns native outlines into EPSG:4326 footprints, `footprint`
traces valid-data masks.
"""

from stacsync.extract import lean_rasterio

lean_rasterio.install()  # before any module here imports rasterio
