"""Let rasterio load without boto3: `rasterio.session` imports it (~0.25 s) for AWSSession alone.

stacsync never uses that session (GDAL gets a DummySession; S3 objects are read by its own client).
"""

from __future__ import annotations

import importlib.machinery
import sys
from types import ModuleType
from typing import Any

SESSION = "rasterio.session"


class _Finder:
    """Finds `rasterio.session` as usual, and loads it with boto3 out of sight.

    Only when boto3 is not loaded yet: once something else (an S3 source) has paid for it,
    rasterio may as well see it.
    """

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if name != SESSION or "boto3" in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _WithoutBoto3(spec.loader)
        return spec


class _WithoutBoto3:
    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        sys.modules["boto3"] = None  # type: ignore[assignment]  # "import boto3" raises ImportError
        try:
            self.loader.exec_module(module)
        finally:
            if "boto3" in sys.modules and sys.modules["boto3"] is None:
                del sys.modules["boto3"]


def install() -> None:
    """Put the finder first on sys.meta_path (once); rasterio is not imported here."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
