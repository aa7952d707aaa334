"""rasterio loads without boto3 (a quarter of a second per process), and boto3 still works."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_the_readers_load_rasterio_without_boto3() -> None:
    out = _run(
        "import sys, stacsync.extract.raster, stacsync.extract.pointcloud, rasterio.session\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules, rasterio.session.boto3)\n"
        "import boto3\n"
        "print(boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:9')"
        ".meta.region_name)"
    )
    assert out.splitlines() == ["False False None", "us-east-1"]


def test_once_boto3_is_loaded_rasterio_sees_it() -> None:
    out = _run(
        "import boto3, stacsync.extract.raster, rasterio.session\n"
        "print(rasterio.session.boto3 is boto3)"
    )
    assert out == "True"
