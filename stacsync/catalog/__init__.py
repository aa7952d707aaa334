"""The STAC model: manifest rows to pystac items, collections, the catalog and the index.

links (paths, hrefs) · model (pystac glue) · items · footprint · collections · summaries ·
index · render (the driver) · layout (placement from tables) · geoparquet, hrefs, titles.
"""
