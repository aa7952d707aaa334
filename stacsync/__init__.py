"""stacsync: keep a static STAC catalog true to a store of drone and geospatial products.

Only the one-shot pass is re-exported here, lazily, so `import stacsync` stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["PassSummary", "__version__", "rescan"]


def __getattr__(name: str):
    if name in ("PassSummary", "rescan"):
        from stacsync.pipeline import sync

        return getattr(sync, name)
    raise AttributeError(name)
