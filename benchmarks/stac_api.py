"""Benchmark: a 10,000-item first push to pgstac and to stac-fastapi, then a one-item update.

Run: .venv/bin/python benchmarks/stac_api.py [N]  (starts its own PostgreSQL and API; root ok).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from stac_api_servers import PG_PASSWORD, Postgres, StacFastApi  # noqa: E402

from stacsync.config.load import quick_settings  # noqa: E402
from stacsync.config.settings import StacApiSettings  # noqa: E402
from stacsync.core.checksum import sha256_hex  # noqa: E402
from stacsync.manifest.db import Manifest  # noqa: E402
from stacsync.pipeline.api_push import ApiPusher  # noqa: E402
from stacsync.pipeline.sync import SyncPass  # noqa: E402


def seed(work: Path, count: int):
    """A real pass over one file, then `count` copies of its item, each moved a little."""
    src = work / "src"
    src.mkdir()
    shutil.copyfile(REPO.parent / "shared" / "testdata" / "RGB.byte.tif", src / "RGB.byte.tif")
    settings = quick_settings(src, work / "out", work / "m.db", None, None)
    with Manifest.open_writer(settings.manifest_path) as db:
        SyncPass(settings, db).run()
        cid, text = db.conn.execute("SELECT collection_id, json FROM item").fetchone()
        template = json.loads(text)
        rows = []
        for n in range(count):
            doc = json.loads(text)
            doc["id"] = f"item-{n:05d}"
            dx = (n % 100) * 0.01
            doc["bbox"] = [b + dx for b in template["bbox"]]
            doc["geometry"]["coordinates"] = [
                [[x + dx, y] for x, y in ring] for ring in template["geometry"]["coordinates"]
            ]
            data = json.dumps(doc, indent=2).encode()
            rows.append((cid, doc["id"], data.decode(), sha256_hex(data), *doc["bbox"]))
        with db.transaction():
            db.conn.execute("DELETE FROM item")
            db.conn.executemany(
                "INSERT INTO item (collection_id, item_id, json, json_hash, west, south, east,"
                " north, start_datetime, end_datetime, dirty) VALUES (?,?,?,?,?,?,?,?,"
                " '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', 0)",
                rows,
            )
    return settings


def run(settings, api: StacApiSettings, label: str) -> None:
    settings = dataclasses.replace(settings, stac_api=api)
    with Manifest.open_writer(settings.manifest_path) as db:
        with ApiPusher(settings, api, db) as pusher:
            first = pusher.push()
        with db.transaction():  # one item changes
            one_item = "SELECT json FROM item WHERE item_id = 'item-00042'"
            text = db.conn.execute(one_item).fetchone()[0]
            doc = json.loads(text)
            doc["properties"]["title"] = "changed"
            data = json.dumps(doc, indent=2)
            db.conn.execute(
                "UPDATE item SET json = ?, json_hash = ? WHERE item_id = 'item-00042'",
                (data, sha256_hex(data.encode())),
            )
        with ApiPusher(settings, api, db) as pusher:
            one = pusher.push()
        with ApiPusher(settings, api, db) as pusher:
            none = pusher.push()
    for name, s in (("first push", first), ("one-item update", one), ("no change", none)):
        print(
            f"{label:13} {name:16} {s.items_upserted:6d} items {s.requests:4d} requests"
            f" {s.seconds:7.2f} s  behind after: {s.behind}"
        )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    os.environ["PGPASSWORD"] = PG_PASSWORD
    work = Path(tempfile.mkdtemp(prefix="stacsync-bench-"))
    pg = Postgres(work)
    api_server = None
    try:
        pg.make_template()
        (work / "a").mkdir()
        settings = seed(work / "a", count)
        pg.new_database("bench_pgstac")
        run(settings, StacApiSettings(kind="pgstac", dsn=pg.dsn("bench_pgstac")), "pgstac")
        pg.new_database("bench_api")
        api_server = StacFastApi(pg, "bench_api", work / "api.log")
        (work / "b").mkdir()
        settings = seed(work / "b", count)
        run(settings, StacApiSettings(kind="transactions", url=api_server.url), "transactions")
    finally:
        if api_server is not None:
            api_server.stop()
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
