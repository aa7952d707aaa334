"""`stacsync validate`: schemas, links, asset hrefs and the index of a published catalog.

Offline: the STAC schemas are packaged with stacsync.
"""
