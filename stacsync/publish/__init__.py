"""Outputs: where catalog files are written, atomically, and made public.

`local` writes a folder, `irods` an iRODS collection.
"""
