"""`stacsync rescan s3://bucket/prefix/ --endpoint-url URL [--anonymous]`: the quick form on
a real moto_server, in a real process; credentials from the environment only, never printed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from processes import cli
from s3server import dummy_credentials, new_bucket, store_for


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    dummy_credentials(monkeypatch)


def test_quick_form_over_s3(s3_server: str, testdata: Path, tmp_path: Path, monkeypatch):
    secret = "s3cr3t-never-printed"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto accepts any signature
    bucket = new_bucket(s3_server)
    store = store_for(s3_server, bucket)
    for name in ("RGB.byte.tif", "autzen_trim.laz"):
        store.put(f"flights/day1/{name}", (testdata / name).read_bytes(), "image/tiff")
    out, db = tmp_path / "out", tmp_path / "m.db"
    url = f"s3://{bucket}/flights"
    done = cli("rescan", url, "--endpoint-url", s3_server, "-o", str(out), "-m", str(db), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["added"] == 2 and summary["items_written"] == 2
    item = json.loads(
        (out / "flights" / "day1__rgb-byte-tif" / "day1__rgb-byte-tif.json").read_text()
    )
    assert item["assets"]["data"]["href"] == f"s3://{bucket}/flights/day1/RGB.byte.tif"
    assert secret not in done.stdout + done.stderr
    assert not any(secret in p.read_text() for p in out.rglob("*.json"))

    again = cli("rescan", url, "--endpoint-url", s3_server, "-o", str(out), "-m", str(db), "--json")
    assert json.loads(again.stdout)["unchanged"] == 2


def test_quick_form_refuses_s3_flags_for_a_folder(tmp_path: Path, testdata: Path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(testdata / "byte.tif", src / "byte.tif")
    done = cli(
        "rescan", str(src), "--anonymous", "-o", str(tmp_path / "o"), "-m", str(tmp_path / "m")
    )
    assert done.returncode != 0
    assert "--endpoint-url and --anonymous are for an s3:// source" in done.stderr


def test_a_bad_s3_url_names_what_is_wrong(tmp_path: Path):
    done = cli("rescan", "s3://No_Such/x", "-o", str(tmp_path / "o"), "-m", str(tmp_path / "m"))
    assert done.returncode != 0
    assert "is not a valid bucket name" in done.stderr
