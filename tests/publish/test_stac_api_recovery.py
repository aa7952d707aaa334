"""The STAC API converges whatever happens: kill -9 around the push, a stopped database, a 4xx.

Real subprocesses killed at a named point (STACSYNC_CRASH_AT), a real PostgreSQL stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from stac_api_servers import (
    PG_PASSWORD,
    Postgres,
    StacFastApi,
    api_items,
    assert_converged,
    search_ids,
    static_items,
    write_setup,
)

from stacsync.manifest.api_acks import ApiAcks
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan

FILES = ["RGB.byte.tif", "elev.tif", "autzen_trim.laz"]
IDS = {"rgb-byte-tif", "elev-tif", "autzen_trim-laz"}


def stacsync(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD, "PYTHONWARNINGS": "ignore"}
    env.pop("STACSYNC_CRASH_AT", None)
    if crash_at:
        env["STACSYNC_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "stacsync.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def behind(manifest: Path) -> int:
    with Manifest.open_reader(manifest) as db:
        return ApiAcks(db.conn).backlog().behind


@pytest.fixture
def pgstac_toml(pgstac_server, stac_fastapi, monkeypatch) -> str:
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    return f'kind = "pgstac"\ndsn = "{pgstac_server.dsn("api")}"\n'


@pytest.mark.parametrize("crash_at", ["api-before-push", "api-before-ack"])
def test_kill_9_around_the_push_converges(
    tmp_path, testdata, stac_fastapi, pgstac_toml, crash_at
) -> None:
    config, cid, output = write_setup(tmp_path, pgstac_toml, FILES, testdata)
    done = stacsync("rescan", "--config", str(config), crash_at=crash_at)
    assert done.returncode == -9, done.stderr
    # The static catalog is complete either way; the manifest says the API is behind.
    assert set(static_items(output, cid)) == IDS
    assert behind(tmp_path / "stacsync.db") == 3
    held = search_ids(stac_fastapi.url, cid)
    assert held == (set() if crash_at == "api-before-push" else IDS)
    summary = stacsync("manifest", "summary", "--config", str(config))
    assert "api: 3 items behind" in summary.stdout

    done = stacsync("rescan", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert behind(tmp_path / "stacsync.db") == 0
    assert_converged(stac_fastapi.url, output, cid)

    # A removal killed the same way: the API loses the item all the same.
    (tmp_path / "src" / "elev.tif").unlink()
    done = stacsync("rescan", "--config", str(config), crash_at=crash_at)
    assert done.returncode == -9
    assert "elev-tif" not in static_items(output, cid)
    assert behind(tmp_path / "stacsync.db") == 1
    assert stacsync("rescan", "--config", str(config)).returncode == 0
    assert behind(tmp_path / "stacsync.db") == 0
    assert_converged(stac_fastapi.url, output, cid)


@pytest.fixture
def own_postgres(pgstac_server, tmp_path) -> Postgres:
    """A PostgreSQL of this test's own, free to be stopped and started again."""
    pg = Postgres(tmp_path / "pg-log")
    pg.make_template()
    pg.new_database("stac")
    yield pg
    pg.destroy()


def count_items(pg: Postgres, cid: str) -> int:
    import psycopg

    with psycopg.connect(pg.dsn("stac"), password=PG_PASSWORD) as conn:
        row = conn.execute("SELECT count(*) FROM pgstac.items WHERE collection = %s", (cid,))
        return row.fetchone()[0]


def test_a_stopped_database_never_blocks_the_static_catalog(
    tmp_path, testdata, own_postgres, monkeypatch
) -> None:
    (tmp_path / "pg-log").mkdir(exist_ok=True)
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    toml = f'kind = "pgstac"\ndsn = "{own_postgres.dsn("stac")}"\ntimeout = 2\n'
    config, cid, output = write_setup(tmp_path, toml, FILES, testdata)
    import stacsync.pipeline.sync as sync

    real = sync.push_api

    def stop_then_push(settings, db):
        own_postgres.stop()  # the database goes away in the middle of the pass
        return real(settings, db)

    monkeypatch.setattr(sync, "push_api", stop_then_push)
    summary = rescan(config)
    assert summary.items_written == 3
    assert set(static_items(output, cid)) == IDS
    assert behind(tmp_path / "stacsync.db") == 3

    monkeypatch.setattr(sync, "push_api", real)
    own_postgres.start()
    rescan(config)  # no file changed: the pass only catches the API up
    assert behind(tmp_path / "stacsync.db") == 0
    assert count_items(own_postgres, cid) == 3


def test_a_refused_item_leaves_the_others_pushed(
    tmp_path, testdata, pgstac_server, stac_fastapi
) -> None:
    # An API that refuses "_" in ids: autzen_trim-laz is refused (400), the rest go.
    strict = StacFastApi(pgstac_server, "api", tmp_path / "strict.log", INVALID_ID_CHARS='["_"]')
    try:
        toml = f'kind = "transactions"\nurl = "{strict.url}"\nretries = 1\n'
        config, cid, output = write_setup(tmp_path, toml, FILES, testdata)
        assert rescan(config).items_written == 3
        assert search_ids(strict.url, cid) == {"rgb-byte-tif", "elev-tif"}
        assert behind(tmp_path / "stacsync.db") == 1
        done = stacsync("manifest", "summary", "--config", str(config))
        assert "api: 1 items behind (1 refused by the API)" in done.stdout
        done = stacsync("api-sync", "--config", str(config), "--json")
        assert done.returncode == 1
        report = json.loads(done.stdout)
        assert list(report["refused"]) == [f"{cid}/autzen_trim-laz"]
        assert "_" in report["refused"][f"{cid}/autzen_trim-laz"]
    finally:
        strict.stop()
    # The same items through an API that takes them all: the refused one goes too.
    config.write_text(config.read_text().replace(strict.url, stac_fastapi.url))
    done = stacsync("api-sync", "--config", str(config), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert behind(tmp_path / "stacsync.db") == 0
    assert_converged(stac_fastapi.url, output, cid)


def send(method: str, url: str, body: dict | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def test_api_sync_full_repairs_edits_behind_our_back(tmp_path, testdata, stac_fastapi) -> None:
    api = stac_fastapi.url
    toml = f'kind = "transactions"\nurl = "{api}"\n'
    config, cid, output = write_setup(tmp_path, toml, FILES, testdata)
    rescan(config)
    assert_converged(api, output, cid)
    held = api_items(api, cid)
    edited = held["rgb-byte-tif"]
    edited["properties"]["title"] = "edited by hand"
    send("PUT", f"{api}/collections/{cid}/items/rgb-byte-tif", edited)
    send("DELETE", f"{api}/collections/{cid}/items/elev-tif")
    extra = {**held["autzen_trim-laz"], "id": "not-ours"}
    send("POST", f"{api}/collections/{cid}/items", extra)
    # The manifest knows nothing of it: a plain push has nothing to do.
    plain = json.loads(stacsync("api-sync", "--config", str(config), "--json").stdout)
    assert plain["items_upserted"] == 0

    dry = stacsync("api-sync", "--config", str(config), "--full", "--dry-run", "--json")
    report = json.loads(dry.stdout)
    assert (report["missing"], report["extra"], report["different"]) == (1, 1, 1)
    assert search_ids(api, cid) == {"rgb-byte-tif", "autzen_trim-laz", "not-ours"}

    done = stacsync("api-sync", "--config", str(config), "--full")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 missing, 1 extra, 1 different" in done.stdout
    assert_converged(api, output, cid)
