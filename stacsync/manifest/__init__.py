"""The SQLite manifest: the single source of truth every catalog file is derived from.

Modules: db (the Manifest), schema (migrations), lock, state (typed pass state), queries, rows.
"""
