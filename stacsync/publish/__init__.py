"""Outputs: where catalog files are written, atomically, and opened to the public.

`base` holds the `Output` protocol a pass writes through; `local` implements it over a folder,
`irods` over an iRODS collection.
"""
