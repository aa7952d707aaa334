"""Test helpers: count what a pass opens, extracts and writes; validate a whole catalog."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from stacsync.check.schemas import SchemaValidator


class Recorder:
    """Counts extractions, checksums, source-file opens and catalog writes of one pass.

    Opens are seen through a Python audit hook (every `open()`/`os.open` in this process)
    filtered to the source folder, so they are counted whoever does them.
    """

    _hook_installed = False
    _active: ClassVar[list[Recorder]] = []

    def __init__(self, monkeypatch, source_root: Path):
        import stacsync.pipeline.examine
        import stacsync.publish.local

        self.source_root = str(Path(source_root).resolve())
        self.extracted: list[str] = []
        self.checksummed: list[str] = []
        self.opened: list[str] = []
        self.written: Counter[str] = Counter()
        self.deleted: list[str] = []

        real_extract = stacsync.pipeline.examine.extract_file
        real_checksum = stacsync.pipeline.examine.checksum_stream

        def extract(path, **kwargs):
            self.extracted.append(str(path))
            return real_extract(path, **kwargs)

        def checksum(stream, algorithm="sha2-256"):
            self.checksummed.append(getattr(stream, "name", "?"))
            return real_checksum(stream, algorithm)

        real_open_atomic = stacsync.publish.local.LocalOutput.open_atomic
        real_delete = stacsync.publish.local.LocalOutput.delete

        def open_atomic(output, relpath):
            self.written[relpath] += 1
            return real_open_atomic(output, relpath)

        def delete(output, relpath):
            self.deleted.append(relpath)
            return real_delete(output, relpath)

        monkeypatch.setattr(stacsync.pipeline.examine, "extract_file", extract)
        monkeypatch.setattr(stacsync.pipeline.examine, "checksum_stream", checksum)
        monkeypatch.setattr(stacsync.publish.local.LocalOutput, "open_atomic", open_atomic)
        monkeypatch.setattr(stacsync.publish.local.LocalOutput, "delete", delete)
        if not Recorder._hook_installed:
            sys.addaudithook(Recorder._audit)
            Recorder._hook_installed = True
        monkeypatch.setattr(Recorder, "_active", [self])

    @staticmethod
    def _audit(event: str, args: tuple) -> None:
        if event != "open" or not Recorder._active:
            return
        path = args[0]
        if isinstance(path, (str, Path)):
            for rec in Recorder._active:
                if str(path).startswith(rec.source_root):
                    rec.opened.append(str(path))

    def reset(self) -> None:
        self.extracted.clear()
        self.checksummed.clear()
        self.opened.clear()
        self.written.clear()
        self.deleted.clear()

    @property
    def written_items(self) -> list[str]:
        return sorted(
            p
            for p in self.written
            if p.endswith(".json") and not p.endswith("collection.json") and p != "catalog.json"
        )


def validate_catalog(output: Path, schema_root: Path) -> int:
    """Validate every JSON file under `output` and every index feature; return the count."""
    validator = SchemaValidator(schema_root)
    count = 0
    for path in sorted(output.rglob("*.json")):
        errors = validator.errors(json.loads(path.read_text()))
        assert not errors, f"{path.relative_to(output)}: {errors}"
        count += 1
    index = output / "index.geojson"
    if index.exists():
        fc = json.loads(index.read_text())
        assert fc["type"] == "FeatureCollection"
        for feature in fc["features"]:
            errors = validator.errors(feature)
            assert not errors, f"index.geojson feature {feature['id']}: {errors}"
    return count


def catalog_bytes(output: Path) -> dict[str, bytes]:
    """Every file of a catalog folder, by relative path (to compare two catalogs)."""
    return {
        str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()
    }


# -- shared test data: real files from ../shared/testdata --------------------------------

GOOD = [
    "RGB.byte.tif",
    "dataset_cog.tif",
    "elev.tif",
    "dataset_dateline.tif",
    "2d_test.tif",
    "autzen_trim.laz",
    "simple.copc.laz",
    "autzen-utm.las",
]

BAD = [
    "empty.tif",
    "not_a_tiff.tif",
    "truncated_RGB.byte.tif",
    "truncated_autzen_trim.laz",
    "garbage_nVariableLength.las",
    "1.2-no-points.las",
    "warsaw_small.las",
    "simple.las",
    "1234_red_0_green_0_blue.tif",
    "dataset_mars.tif",
    "test_rpcs.tif",
]

CSV = "Id,plot,collection_date\nwest_a,P1,2019-05-19\nwest_b,P1,2019-05-19\nnorth,P2,2019-05-21\n"

CSV_CONFIG = """
[source]
path = "src"
[output]
path = "catalog"
[[collection]]
id = "srer-2019"
license = "CC-BY-SA-4.0"
match = '(?P<asset>[^/]+)\\.(tif|laz)$'
[collection.table]
path = "plots.csv"
key = "Id"
item_column = "plot"
datetime = "collection_date"
[collection.properties]
platform = "DJI Phantom 4 RTK"
"sci:doi" = "10.1002/ecs2.3649"
"""


def age(root: Path, seconds: float = 60) -> None:
    """Make every file older than the racy-mtime window, as files on a store usually are."""
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


# -- comparing catalogs built from different stores ------------------------------------------


def items_under(out: Path) -> dict[str, dict[str, Any]]:
    """Every item file under `out`, by id."""
    found = {}
    for path in out.rglob("*.json"):
        doc = json.loads(path.read_text())
        if doc["type"] == "Feature":
            found[doc["id"]] = doc
    return found


def without_hrefs(item: dict[str, Any]) -> dict[str, Any]:
    """An item without what depends on where its files live: hrefs, alternates, links."""
    item = json.loads(json.dumps(item))
    for value in item["assets"].values():
        value.pop("href")
        value.pop("alternate", None)
    item["stac_extensions"] = [e for e in item["stac_extensions"] if "alternate" not in e]
    item.pop("links")
    return item
