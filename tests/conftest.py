"""Shared fixtures: the real test data in ../shared and its ground truth."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from processes import DaemonProcess
from s3server import FaultProxy, MotoServer, moto_server_command, new_bucket

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TESTDATA = SHARED / "testdata"
SCHEMAS = SHARED / "stac-schemas"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Folder of real GeoTIFF/LAS/LAZ files from public projects (read-only)."""
    if not (TESTDATA / "expected.json").is_file():
        pytest.skip(f"real test data not found at {TESTDATA}")
    return TESTDATA


@pytest.fixture(scope="session")
def expected(testdata: Path) -> dict:
    """Ground truth for every file in `testdata`, keyed by file name."""
    return json.loads((testdata / "expected.json").read_text())["files"]


@pytest.fixture(scope="session")
def schema_root() -> Path:
    """Offline copy of the STAC JSON schemas, laid out by URL."""
    if not (SCHEMAS / "urlmap.json").is_file():
        pytest.skip(f"STAC schemas not found at {SCHEMAS}")
    return SCHEMAS


@pytest.fixture
def copy_testdata(testdata: Path, tmp_path: Path):
    """Copy named test files into a fresh folder (the originals are read-only)."""

    def copy(*names: str, dest: Path | None = None) -> Path:
        dest = dest or tmp_path / "src"
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(testdata / name, dest / name)
        return dest

    return copy


@pytest.fixture
def daemons():
    """Start daemons; whatever a test leaves running is stopped (and killed if need be)."""
    started: list[DaemonProcess] = []

    def start(config: Path, *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(config, *args, env=env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[str]:
    """The endpoint URL of a real moto_server (S3 over HTTP) run for the whole session."""
    command = moto_server_command()
    if command is None:
        pytest.skip("moto_server not installed (pip install -e '.[test]' brings moto[server])")
    server = MotoServer(command, tmp_path_factory.mktemp("moto") / "moto_server.log")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pgstac_server(tmp_path_factory) -> Iterator:
    """A real PostgreSQL with PostGIS and a migrated pgstac template, for the whole session.

    PostGIS is installed with apt-get when missing and the machine allows it; the tests skip
    with the reason only when PostgreSQL, PostGIS or pgstac cannot be had.
    """
    from stac_api_servers import Postgres, Unavailable, installed

    reason = installed()
    if reason is not None:
        pytest.skip(reason)
    try:
        pg = Postgres(tmp_path_factory.mktemp("postgres"))
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        pg.make_template()
    except Unavailable as exc:
        pg.destroy()
        pytest.skip(str(exc))
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def stac_fastapi(pgstac_server, tmp_path_factory) -> Iterator:
    """stac-fastapi-pgstac (transactions on) on its own database of `pgstac_server`."""
    from stac_api_servers import StacFastApi

    database = pgstac_server.new_database("api")
    log = tmp_path_factory.mktemp("stac-fastapi") / "uvicorn.log"
    api = StacFastApi(pgstac_server, database, log)
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def many_keys(s3_server: str) -> tuple[str, list[str]]:
    """A bucket of 2,500 small objects under `many/` (three listing pages), made once for the
    session: the server takes seconds to store them. Read-only: tests must not change it."""
    from s3server import dummy_credentials, store_for

    with pytest.MonkeyPatch.context() as mp:
        dummy_credentials(mp)
        bucket = new_bucket(s3_server)
        store = store_for(s3_server, bucket)
        keys = [f"many/{i:05d}.tif" for i in range(2500)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: store.put(k, k.encode(), "image/tiff"), keys))
    return bucket, keys


@pytest.fixture
def bucket(s3_server: str) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return new_bucket(s3_server)


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A recording relay in front of the S3 server (requests seen, faults injected)."""
    relay = FaultProxy(s3_server)
    yield relay
    relay.close()
