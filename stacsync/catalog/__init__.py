"""The STAC model: manifest rows to items, collections, the catalog and the index.

Pure builders (stac), the placement of files (layout), rendering and GeoParquet.
"""
