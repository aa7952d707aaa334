"""Hostile stores and careless configs: no name, link or pattern can hang, leak, escape or lose.

Each test is one row of the threat list in docs/security.md, tried as an attacker would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from helpers import catalog_bytes, validate_catalog
from processes import cli

from stacsync.check.catalog import check_catalog
from stacsync.config.load import quick_settings
from stacsync.core.errors import SourceUnavailableError
from stacsync.core.names import display
from stacsync.manifest import queries
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan
from stacsync.sources.include import is_included

RASTER = "byte.tif"  # a small real GeoTIFF from the test data


def _config(folder: Path, source: str = "src", match: str = "^(?P<item>.+)$", **keys) -> Path:
    """A config in `folder` with `[source]` keys (TOML literals) and one collection."""
    lines = [f"{k} = {v}" for k, v in keys.items()]
    text = "\n".join(
        [
            "[source]",
            f'path = "{source}"',
            *lines,
            "[output]",
            'path = "catalog"',
            "[manifest]",
            'path = "stacsync.db"',
            "[[collection]]",
            'id = "c"',
            f"match = '{match}'",
        ]
    )
    config = folder / "stacsync.toml"
    config.write_text(text + "\n", encoding="utf-8")
    return config


def _items(output: Path) -> dict[str, dict]:
    """Every item JSON under `output`, by id, parsed from strict UTF-8."""
    found = {}
    for path in output.rglob("*.json"):
        data = json.loads(path.read_bytes().decode("utf-8"))
        if data.get("type") == "Feature":
            found[data["id"]] = data
    return found


def _local_file(href: str) -> Path:
    """The file an asset href names: a plain path, or a file: URI with %-escaped bytes."""
    if href.startswith("file://"):
        return Path(os.fsdecode(unquote_to_bytes(urlsplit(href).path)))
    return Path(href)


def _assert_every_byte_is_utf8(output: Path) -> None:
    for path in output.rglob("*"):
        if path.suffix in (".json", ".geojson"):
            path.read_bytes().decode("utf-8")  # no lone surrogates, no raw name bytes


# -- names are bytes -----------------------------------------------------------------------


NAMES = [
    b"bad\xff\xfename.tif",  # not UTF-8
    b"new\nline.tif",
    b"tab\tand\rcr.tif",
    b"esc\x1b[31mred.tif",
    b"per%cent #hash?.tif",
    "ünïcødé 文字.tif".encode(),
    b"good.tif",
]


def test_any_name_becomes_an_item_with_a_lossless_path_and_an_href_that_leads_to_it(
    testdata, tmp_path, schema_root
):
    src = tmp_path / "src"
    src.mkdir()
    for name in NAMES:
        shutil.copyfile(testdata / RASTER, os.path.join(os.fsencode(src), name))
    done = cli("rescan", str(src), "--output", str(tmp_path / "out"), "--manifest",
               str(tmp_path / "m.db"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["added"] == len(NAMES) and summary["errors"] == 0
    assert summary["items_written"] == len(NAMES)

    with Manifest.open_reader(tmp_path / "m.db") as db:
        assert sorted(os.fsencode(p) for p in db.paths()) == sorted(NAMES)  # byte for byte
        assert {r["status"] for r in queries.files(db)} == {"ok"}

    items = _items(tmp_path / "out")
    assert len(items) == len(NAMES)
    hrefs = {_local_file(i["assets"]["data"]["href"]) for i in items.values()}
    assert hrefs == {Path(os.fsdecode(os.path.join(os.fsencode(src), n))) for n in NAMES}
    _assert_every_byte_is_utf8(tmp_path / "out")
    assert (
        validate_catalog(tmp_path / "out", schema_root) == len(NAMES) + 2
    )  # + catalog, collection
    assert check_catalog(tmp_path / "out").ok

    again = cli("rescan", str(src), "--output", str(tmp_path / "out"), "--manifest",
                str(tmp_path / "m.db"), "--json")  # fmt: skip
    assert json.loads(again.stdout)["unchanged"] == len(NAMES)


def test_listings_show_names_with_escapes_and_show_finds_them(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in (b"bad\xff\xfename.tif", b"new\nline.tif"):
        shutil.copyfile(testdata / RASTER, os.path.join(os.fsencode(src), name))
    rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    listed = cli("manifest", "files", "--manifest", str(tmp_path / "m.db"))
    lines = listed.stdout.splitlines()
    assert len(lines) == 2  # a newline in a name does not break a listing line
    assert any(line.endswith("bad\\xff\\xfename.tif") for line in lines)
    assert any(line.endswith("new\\nline.tif") for line in lines)
    shown = cli(
        "manifest", "show", "--manifest", str(tmp_path / "m.db"), "--json", "new\\nline.tif"
    )
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "ok"


def test_a_href_rewrite_percent_encodes_every_byte_a_url_cannot_hold(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(testdata / RASTER, os.path.join(os.fsencode(src), b"a b\xff\n.tif"))
    config = _config(tmp_path)
    with config.open("a") as f:
        f.write(f'[[href_rewrite]]\nprefix = "{src}"\nto = "https://example.org/data"\n')
    rescan(config)
    (item,) = _items(tmp_path / "catalog").values()
    assert item["assets"]["data"]["href"] == "https://example.org/data/a%20b%FF%0A.tif"


def test_a_path_longer_than_gdal_takes_is_read_through_a_stream(testdata, tmp_path):
    src = tmp_path / "src"
    folder = src
    while len(str(folder)) < 1800:  # components of at most 200 bytes, up to 1,800
        folder = folder / ("d" * min(200, max(1, 1800 - len(str(folder)) - 1)))
    folder.mkdir(parents=True)
    target = folder / ("y" * (2010 - len(str(folder)) - 5) + ".tif")
    shutil.copyfile(testdata / RASTER, target)
    assert len(str(target)) == 2010
    summary = rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    assert summary.errors == 0 and summary.items_written == 1


# -- links, loops and special files ---------------------------------------------------------


def test_a_symlink_dag_lists_each_file_once(testdata, tmp_path):
    src = tmp_path / "src"
    for i in range(16):
        (src / f"l{i}").mkdir(parents=True)
        if i < 15:
            for name in ("a", "b"):
                (src / f"l{i}" / name).symlink_to(f"../l{i + 1}", target_is_directory=True)
    shutil.copyfile(testdata / RASTER, src / "l15" / "end.tif")
    summary = rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    with Manifest.open_reader(tmp_path / "m.db") as db:
        assert db.paths() == ["l15/end.tif"]
        skipped = {row["path"]: row["error"] for row in db.errors()}
    assert summary.items_written == 1
    assert len(skipped) == 30  # every link, each named, none walked
    assert skipped["l3/b"] == "the same folder as l4, which is listed there: not listed twice"


def _outside_links(testdata: Path, tmp_path: Path) -> Path:
    src, outside = tmp_path / "src", tmp_path / "outside"
    (src / "inner").mkdir(parents=True)
    outside.mkdir()
    shutil.copyfile(testdata / RASTER, outside / "secret.tif")
    shutil.copyfile(testdata / RASTER, src / "inner" / "kept.tif")
    (src / "x.tif").symlink_to("../outside/secret.tif")
    (src / "passwd.tif").symlink_to("/etc/passwd")
    (src / "away").symlink_to("../outside", target_is_directory=True)
    (src / "in.tif").symlink_to("inner/kept.tif")
    return src


def test_links_out_of_the_source_are_not_followed_and_say_so(testdata, tmp_path):
    _outside_links(testdata, tmp_path)
    summary = rescan(_config(tmp_path))
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert db.paths() == ["in.tif", "inner/kept.tif"]
        errors = {row["path"]: row["error"] for row in db.errors()}
    assert set(errors) == {"x.tif", "passwd.tif", "away"}
    assert errors["passwd.tif"].startswith("a symlink to file /etc/passwd, outside the source")
    assert 'source.follow_symlinks = "all"' in errors["away"]
    assert len(summary.listing_problems) == 3
    assert not any("secret" in p.name for p in (tmp_path / "catalog").rglob("*"))


def test_follow_symlinks_all_and_none(testdata, tmp_path):
    _outside_links(testdata, tmp_path)
    rescan(_config(tmp_path, follow_symlinks='"all"'))
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        rows = {row["path"]: row["status"] for row in queries.files(db)}
    assert rows == {
        "away/secret.tif": "ok",
        "in.tif": "ok",
        "inner/kept.tif": "ok",
        "passwd.tif": "error",  # followed, and then not a raster
        "x.tif": "ok",
    }
    shutil.rmtree(tmp_path / "catalog")
    os.remove(tmp_path / "stacsync.db")
    rescan(_config(tmp_path, follow_symlinks='"none"'))
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert db.paths() == ["inner/kept.tif"]
        errors = {row["path"] for row in db.errors()}
    assert errors == {"x.tif", "passwd.tif", "away", "in.tif"}


def test_special_files_are_reported_not_silently_skipped(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(testdata / RASTER, src / "good.tif")
    os.mkfifo(src / "pipe.tif")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock.laz"))
        kinds = {"pipe.tif": "a FIFO (named pipe)", "sock.laz": "a socket"}
        try:
            os.mknod(src / "dev.laz", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            kinds["dev.laz"] = "a character device"
        except PermissionError:
            pass  # not root: a FIFO and a socket still make the point
        summary = rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    assert summary.items_written == 1
    with Manifest.open_reader(tmp_path / "m.db") as db:
        errors = {row["path"]: row["error"] for row in db.errors()}
    assert errors == {name: f"{kind}, not a regular file: skipped" for name, kind in kinds.items()}
    assert sorted(summary.listing_problems) == sorted(f"{n}: {e}" for n, e in errors.items())
    shown = cli("manifest", "errors", "--manifest", str(tmp_path / "m.db"))
    assert "pipe.tif\n    a FIFO (named pipe), not a regular file: skipped" in shown.stdout

    (src / "pipe.tif").unlink()  # fixed: the record goes with it
    rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    with Manifest.open_reader(tmp_path / "m.db") as db:
        assert "pipe.tif" not in {row["path"] for row in db.errors()}


# -- a missing or empty source is not a success --------------------------------------------


def test_a_missing_source_exits_1_and_writes_nothing(tmp_path):
    done = cli("rescan", str(tmp_path / "nonexist"), "--output", str(tmp_path / "x"),
               "--manifest", str(tmp_path / "x.db"))  # fmt: skip
    assert done.returncode == 1
    assert "nonexist: cannot read source folder: No such file or directory" in done.stderr
    assert "nothing was written" in done.stderr
    assert not (tmp_path / "x").exists()


def test_an_empty_source_is_refused_unless_min_files_allows_it(tmp_path):
    (tmp_path / "src").mkdir()
    args = [str(tmp_path / "src"), "--output", str(tmp_path / "x"), "--manifest",
            str(tmp_path / "x.db")]  # fmt: skip
    done = cli("rescan", *args)
    assert done.returncode == 1
    assert "lists 0 matching files, fewer than source.min_files = 1" in done.stderr
    allowed = cli("rescan", *args, "--min-files", "0", "--json")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["catalog_written"]


def test_an_unmounted_mount_point_keeps_the_catalog(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("byte.tif", "elev.tif"):
        shutil.copyfile(testdata / name, src / name)
    config = _config(tmp_path)
    rescan(config)
    before = catalog_bytes(tmp_path / "catalog")
    for path in src.iterdir():  # the mount goes away: its mount point is an empty folder
        path.unlink()
    with pytest.raises(SourceUnavailableError, match=r"source\.min_files = 1"):
        rescan(config)
    assert catalog_bytes(tmp_path / "catalog") == before
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        assert db.paths() == ["byte.tif", "elev.tif"]


# -- command-line filters -----------------------------------------------------------------


def test_fixed_choice_options_refuse_other_values_and_empty_filters_say_so(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(testdata / RASTER, src / RASTER)
    rescan(source=src, output=tmp_path / "out", manifest=tmp_path / "m.db")
    db = ["--manifest", str(tmp_path / "m.db")]
    bogus = cli("manifest", "files", *db, "--status", "bogus")
    assert bogus.returncode == 2 and "'bogus' is not one of 'ok', 'error'" in bogus.stderr
    nope = cli("manifest", "files", *db, "--collection", "nope")
    assert nope.returncode == 0 and nope.stdout == ""
    assert (
        "no files match --collection nope (no collection 'nope' has files; collections: src)"
        in (nope.stderr)
    )
    none = cli("manifest", "files", *db, "--status", "error")
    assert none.stderr.strip() == "no files match --status error"


# -- fuzz: arbitrary names through whole passes ---------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

_NAME_BYTES = st.binary(min_size=1, max_size=200).map(
    lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")
)
_SUFFIXES = st.sampled_from([b".tif", b".TIF", b".laz", b"", b".tif\n", b".txt"])


@hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
@hypothesis.given(names=st.lists(st.tuples(_NAME_BYTES, _SUFFIXES), min_size=1, max_size=5))
def test_fuzzed_names_every_file_is_an_item_or_a_reported_problem(
    testdata, tmp_path_factory, names
):
    tmp = tmp_path_factory.mktemp("fuzz")
    src = tmp / "src"
    src.mkdir()
    raster, cloud = (testdata / RASTER).read_bytes(), (testdata / "autzen_trim.laz").read_bytes()
    created = set()
    for stem, suffix in names:
        name = (stem + suffix)[-255:]
        if name in (b".", b"..") or name in created:
            continue
        Path(os.fsdecode(os.path.join(os.fsencode(src), name))).write_bytes(
            cloud if suffix == b".laz" else raster
        )
        created.add(name)
    outside_before = sorted(p.name for p in tmp.iterdir())
    settings = quick_settings(src, tmp / "out", tmp / "m.db", min_files=0)
    summary = rescan(settings)

    with Manifest.open_reader(tmp / "m.db") as db:
        rows = {os.fsencode(r["path"]): r for r in queries.files(db)}
        skipped = {os.fsencode(r["path"]) for r in db.errors()}
    included = {n for n in created if is_included(settings, os.fsdecode(n))}
    assert set(rows) | skipped == included  # every candidate accounted for, nothing more
    for name in included:
        row = rows[name]
        assert row["status"] == "ok" or row["error"], display(os.fsdecode(name))
    assert summary.items_written == sum(r["status"] == "ok" for r in rows.values())
    # Nothing escapes the output: every file written lies under it, and nothing new beside it.
    out = (tmp / "out").resolve()
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out)
    beside = {p.name for p in tmp.iterdir()} - {*outside_before, "out"}
    assert all(name.startswith("m.db") for name in beside), beside  # the manifest, its lock
    _assert_every_byte_is_utf8(out)
    for item in _items(out).values():
        assert _local_file(item["assets"]["data"]["href"]).is_file()


def test_mail_shows_names_with_escapes():
    from stacsync.keeper.mail import new_error_list

    rows = [{"path": "bad\udcff\n.tif", "error": "bad\\xff\\n.tif: not a TIFF"}]
    assert new_error_list([], rows) == [("bad\\xff\\n.tif", "bad\\xff\\n.tif: not a TIFF")]
    "".join(new_error_list([], rows)[0]).encode("utf-8")  # a mail body can carry it
