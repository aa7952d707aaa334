"""Whole passes from an iRODS source to an iRODS output, against the in-process fake server.

Real test files are uploaded into the fake; the published catalog is read back and validated.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import irods.exception as ex
import pytest
from fake_irods import FakeIrodsServer

from stacsync.check.schemas import SchemaValidator
from stacsync.config.load import load_settings, settings_from_dict
from stacsync.daemon.loop import Daemon
from stacsync.manifest.db import Manifest
from stacsync.pipeline.assemble import make_parent_store
from stacsync.pipeline.sync import SyncPass
from stacsync.publish.irods import IrodsOutput
from stacsync.sources.irods import IrodsSource

HOME = "/iplant/home/alice"
SOURCE = f"{HOME}/drone"
OUTPUT = f"{SOURCE}/stac"  # inside the source: never listed as data
DAV = "https://data.cyverse.org/dav-anon"
FILES = {
    "m1/ortho.tif": "dataset_cog.tif",
    "m1/dsm.tif": "elev.tif",
    "m1/points.laz": "autzen_trim.laz",
    "m2/ortho.tif": "byte.tif",
    "m2/points.laz": "simple.copc.laz",
    "m2/broken.tif": "not_a_tiff.tif",
}
T0 = 1_700_000_000


@pytest.fixture
def server(testdata: Path) -> FakeIrodsServer:
    server = FakeIrodsServer(clock=T0)
    for relpath, name in FILES.items():
        server.add_object(f"{SOURCE}/{relpath}", (testdata / name).read_bytes(), modify_time=T0)
    return server


def settings(tmp_path: Path, **output):
    document = {
        "source": {"irods": SOURCE},
        "output": {"irods": OUTPUT, **output},
        "manifest": {"path": str(tmp_path / "stacsync.db")},
        "collection": [
            {
                "id": "drone",
                "match": r"^(?P<item>[^/]+)/(?P<asset>[^/]+)\.(tif|laz)$",
            }
        ],
    }
    return settings_from_dict(document, tmp_path)


def run(server: FakeIrodsServer, s, source: IrodsSource | None = None):
    source = source or IrodsSource(server.factory("alice"), SOURCE, _included(s), retry_wait=0)
    output = IrodsOutput(server.client("alice"), OUTPUT)
    with Manifest.open_writer(s.manifest_path, purpose="test") as db:
        return SyncPass(s, db, source=source, output=output).run(), source


def _included(s):
    from stacsync.sources.include import is_included

    return lambda relpath: is_included(s, relpath)


def published(server: FakeIrodsServer) -> dict[str, dict]:
    prefix = OUTPUT + "/"
    return {
        path[len(prefix) :]: json.loads(server.data(path))
        for path in server.objects
        if path.startswith(prefix) and path.endswith((".json", ".geojson"))
    }


def test_a_pass_publishes_a_valid_public_catalog_into_irods(server, tmp_path, schema_root):
    s = settings(tmp_path)
    summary, _ = run(server, s)
    assert (summary.added, summary.errors) == (6, 1)

    files = published(server)
    assert set(files) == {
        "catalog.json",
        "index.geojson",
        "drone/collection.json",
        "drone/m1/m1.json",
        "drone/m2/m2.json",
    }
    validator = SchemaValidator(schema_root)
    for name, doc in files.items():
        docs = doc["features"] if name == "index.geojson" else [doc]
        for one in docs:
            assert validator.errors(one) == [], name
    m1 = files["drone/m1/m1.json"]
    assert m1["assets"]["ortho"]["href"] == f"{DAV}{SOURCE}/m1/ortho.tif"
    assert m1["links"][0]["href"].startswith(f"{DAV}{OUTPUT}/")
    # Server checksums are used and files are read through streams: the COG only up to its
    # small overview, the LAZ only its header. elev.tif (1.1 MB, no overview) is small enough
    # to be read whole for its footprint and thumbnail (extract.overview.FULL_READ_BYTES).
    assert server.reads[f"{SOURCE}/m1/ortho.tif"].bytes_read <= 256 * 1024
    assert server.reads[f"{SOURCE}/m1/points.laz"].bytes_read <= 64 * 1024


def test_public_read_goes_on_the_output_only_and_only_once(server, tmp_path):
    s = settings(tmp_path)
    run(server, s)
    anonymous = ("anonymous", "iplant")
    assert server.acl(OUTPUT).get(anonymous) == "read_object"
    assert server.inherits(OUTPUT)
    assert server.acl(f"{OUTPUT}/catalog.json").get(anonymous) == "read_object"
    for wider in (SOURCE, HOME, f"{SOURCE}/m1", f"{SOURCE}/m1/ortho.tif"):
        assert anonymous not in server.acl(wider), wider
    for collection in (SOURCE, HOME, f"{SOURCE}/m1"):
        assert not server.inherits(collection), collection

    sets = len(server.calls("set_acl"))
    puts = len(server.calls("put"))
    summary, _ = run(server, s)  # nothing changed: no ACL call, no upload
    assert summary.unchanged == 6
    assert len(server.calls("set_acl")) == sets
    assert len(server.calls("put")) == puts


def test_modified_and_deleted_objects_update_the_published_catalog(server, tmp_path, testdata):
    s = settings(tmp_path)
    run(server, s)
    server.clock = T0 + 600
    server.write_object(f"{SOURCE}/m2/ortho.tif", (testdata / "RGB.byte.tif").read_bytes())
    server.delete_object(f"{SOURCE}/m1/dsm.tif")
    summary, _ = run(server, s)
    assert (summary.modified, summary.removed) == (1, 1)
    files = published(server)
    assert "dsm" not in files["drone/m1/m1.json"]["assets"]
    m2 = files["drone/m2/m2.json"]
    assert m2["assets"]["ortho"]["proj:code"] == "EPSG:32618"  # RGB.byte.tif's CRS
    assert [f["id"] for f in files["index.geojson"]["features"]] == ["m1", "m2"]


def test_permission_denied_on_one_object_is_an_error_row(server, tmp_path):
    server.grant(f"{SOURCE}/m1/dsm.tif", "alice", "null")
    s = settings(tmp_path)
    summary, _ = run(server, s)
    with Manifest.open_reader(s.manifest_path) as db:
        errors = {row["path"]: row["error"] for row in db.errors()}
    assert "m1/dsm.tif" in errors and "permission denied" in errors["m1/dsm.tif"].lower()
    assert summary.added == 6  # the rest is published
    assert "drone/m1/m1.json" in published(server)


def test_the_parent_catalog_in_irods_gets_a_child_link(server, tmp_path):
    parent = f"{HOME}/catalog.json"
    keeper = {"type": "Catalog", "stac_version": "1.1.0", "id": "k", "description": "d"}
    keeper["links"] = []
    server.add_object(parent, json.dumps(keeper).encode())
    s = settings(tmp_path, parent_catalog=parent)
    run(server, s)
    links = json.loads(server.data(parent))["links"]
    assert links == [
        {
            "rel": "child",
            "href": f"{DAV}{OUTPUT}/catalog.json",
            "type": "application/json",
        }
    ]
    assert make_parent_store(s, IrodsOutput(server.client(), OUTPUT)) is not None


# -- `stacsync run` on an iRODS source: polls for changes, reconciles for deletions ----------


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_the_daemon_polls_irods_for_new_modified_and_deleted_objects(tmp_path, testdata):
    server = FakeIrodsServer(clock=int(time.time()) - 3600)  # an hour-old store
    for relpath, name in list(FILES.items())[:3]:
        server.add_object(f"{SOURCE}/{relpath}", (testdata / name).read_bytes())
    config = tmp_path / "stacsync.toml"
    config.write_text(
        f'[source]\nirods = "{SOURCE}"\n[output]\nirods = "{OUTPUT}"\n'
        '[[collection]]\nid = "drone"\n'
        "match = '^(?P<item>[^/]+)/(?P<asset>[^/]+)\\.(tif|laz)$'\n"
    )
    sources: list[IrodsSource] = []

    def source_factory(s):
        sources.append(IrodsSource(server.factory("alice"), SOURCE, _included(s), retry_wait=0))
        return sources[-1]

    daemon = Daemon(
        config,
        overrides={"poll_seconds": 0.2, "reconcile_seconds": 3, "settle_seconds": 0},
        source_factory=source_factory,
        output_factory=lambda s: IrodsOutput(server.client("alice"), OUTPUT),
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: "drone/m1/m1.json" in published(server))
        assert daemon.status().startswith("polling changes every 0.2 s")
        full_listings = len(server.calls("query"))

        server.clock = int(time.time())  # new and modified objects get a fresh modify time
        server.add_object(f"{SOURCE}/m3/ortho.tif", (testdata / "byte.tif").read_bytes())
        _wait(lambda: "drone/m3/m3.json" in published(server))
        server.write_object(f"{SOURCE}/m1/ortho.tif", (testdata / "RGB.byte.tif").read_bytes())
        _wait(
            lambda: (
                published(server)["drone/m1/m1.json"]["assets"]["ortho"].get("proj:code")
                == "EPSG:32618"
            )
        )
        # Polls asked only for what changed since the last one.
        since_queries = [c for c in server.calls("query") if c[1] is not None]
        assert since_queries and len(server.calls("query")) > full_listings

        server.delete_object(f"{SOURCE}/m3/ortho.tif")  # only a full listing sees this
        _wait(lambda: "drone/m3/m3.json" not in published(server), timeout=30)
    finally:
        daemon.request_stop()
        thread.join(30)
    assert not thread.is_alive()


def _csv_layout_in_irods(tmp_path: Path, testdata: Path, files: dict[str, str]):
    """The notebook's CSV workflow (tests/test_sync.py) with source and output in the fake."""
    from helpers import CSV, CSV_CONFIG

    server = FakeIrodsServer(clock=T0)
    for name, real in files.items():
        server.add_object(f"{SOURCE}/{name}", (testdata / real).read_bytes())
    server.add_object(f"{SOURCE}/plots.csv", CSV.encode())
    config = tmp_path / "stacsync.toml"
    config.write_text(
        CSV_CONFIG.replace('path = "src"', f'irods = "{SOURCE}"').replace(
            'path = "catalog"', f'irods = "{OUTPUT}"'
        )
    )
    return server, load_settings(config), CSV


def test_a_metadata_table_inside_the_irods_source_is_fetched_when_it_changes(tmp_path, testdata):
    files = {"west_a.tif": "RGB.byte.tif", "north.laz": "autzen_trim.laz"}
    server, s, csv = _csv_layout_in_irods(tmp_path, testdata, files)
    assert s.collections[0].table.source_relpath == "plots.csv"
    summary, _ = run(server, s)
    assert summary.items_written == 2 and summary.errors == 0
    p2 = published(server)["srer-2019/p2/p2.json"]
    assert p2["properties"]["datetime"] == "2019-05-21T00:00:00Z"

    gets = server.reads[f"{SOURCE}/plots.csv"].opens
    summary, _ = run(server, s)  # unchanged table: not fetched again
    assert server.reads[f"{SOURCE}/plots.csv"].opens == gets
    assert summary.items_written == 0

    server.clock = T0 + 60
    server.write_object(
        f"{SOURCE}/plots.csv", csv.replace("north,P2,2019-05-21", "north,P2,2019-06-02").encode()
    )
    summary, _ = run(server, s)
    assert summary.items_written == 1
    p2 = published(server)["srer-2019/p2/p2.json"]
    assert p2["properties"]["datetime"] == "2019-06-02T00:00:00Z"


def test_a_table_that_cannot_be_fetched_keeps_its_last_copy(tmp_path, testdata):
    server, s, _csv = _csv_layout_in_irods(tmp_path, testdata, {"west_a.tif": "RGB.byte.tif"})
    run(server, s)
    server.fail("replicas", ex.CAT_NO_ACCESS_PERMISSION("no"), times=99, path=f"{SOURCE}/plots.csv")
    summary, _ = run(server, s)
    assert any("plots.csv: cannot fetch the metadata table" in p for p in summary.listing_problems)
    assert summary.errors == 0 and "srer-2019/p1/p1.json" in published(server)
