"""`stacsync validate`: schemas, links, asset hrefs and the index of a published catalog.

Offline: the STAC schemas are packaged with stacsync (`schemas`). `catalog` walks the output,
`index` reads index.geojson back, `report` holds what is found.
"""
