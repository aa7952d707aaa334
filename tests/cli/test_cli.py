"""The `stacsync` command line, run as a real process where exit codes and stdout matter."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from helpers import validate_catalog

from stacsync.cli.main import cli
from stacsync.manifest.db import Manifest

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {
    "added",
    "modified",
    "touched",
    "removed",
    "unchanged",
    "deferred",
    "errors",
    "items_written",
    "items_deleted",
    "collections_written",
    "seconds",
}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stacsync.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.fixture
def folder(copy_testdata, tmp_path: Path) -> Path:
    src = copy_testdata("RGB.byte.tif", "autzen_trim.laz", "empty.tif", dest=tmp_path / "flight 1")
    for path in src.iterdir():
        os.utime(path, ns=(0, path.stat().st_mtime_ns - 60 * 10**9))
    return src


def test_rescan_json_prints_one_object_and_exits_zero_despite_bad_files(folder, tmp_path):
    out, db = tmp_path / "catalog", tmp_path / "m.db"
    done = run("rescan", str(folder), "--output", str(out), "--manifest", str(db), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # exactly one object, nothing else on stdout
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["added"], summary["errors"], summary["items_written"]) == (3, 1, 2)
    again = json.loads(run("rescan", str(folder), "-o", str(out), "-m", str(db), "--json").stdout)
    assert again["unchanged"] == 3 and again["items_written"] == 0


def test_rescan_human_summary_and_public_url(folder, tmp_path, schema_root):
    out = tmp_path / "catalog"
    url = "https://data.cyverse.org/dav-anon/iplant/home/me/catalog"
    done = run(
        "rescan", str(folder), "-o", str(out), "-m", str(tmp_path / "m.db"), "--public-url", url
    )
    assert done.returncode == 0, done.stderr
    assert "3 added" in done.stdout and "Errors:  1 files" in done.stdout
    catalog = json.loads((out / "catalog.json").read_text())
    assert {link["rel"]: link["href"] for link in catalog["links"]}["self"] == (
        url + "/catalog.json"
    )
    validate_catalog(out, schema_root)


def test_bad_config_names_the_key_and_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[source]\npath = "."\n[output]\npath = "out"\n'
        '[[collection]]\nid = "x"\nmatch = "(?P<item>["\n'
    )
    done = run("rescan", "--config", str(config))
    assert done.returncode == 2
    assert "collection[0].match" in done.stderr and "regex" in done.stderr


def test_locked_manifest_exits_3_naming_the_holder(folder, tmp_path):
    db = tmp_path / "m.db"
    with Manifest.open_writer(db, purpose="stacsync run --config ofo.toml"):
        done = run("rescan", str(folder), "-o", str(tmp_path / "c"), "-m", str(db))
    assert done.returncode == 3
    assert f"pid {os.getpid()}" in done.stderr and "stacsync run" in done.stderr


def test_unwritable_output_exits_4(folder, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    done = run("rescan", str(folder), "-o", str(blocker), "-m", str(tmp_path / "m.db"))
    assert done.returncode == 4
    assert "not-a-folder" in done.stderr


def test_manifest_commands(folder, tmp_path):
    db = tmp_path / "m.db"
    run("rescan", str(folder), "-o", str(tmp_path / "c"), "-m", str(db))
    summary = json.loads(run("manifest", "summary", "-m", str(db), "--json").stdout)
    assert summary["by_status"] == {"error": 1, "ok": 2}
    assert summary["last_pass"]["summary"]["added"] == 3
    files = json.loads(run("manifest", "files", "-m", str(db), "--status", "ok", "--json").stdout)
    assert sorted(f["path"] for f in files) == ["RGB.byte.tif", "autzen_trim.laz"]
    errors = json.loads(run("manifest", "errors", "-m", str(db), "--json").stdout)
    assert [e["path"] for e in errors["errors"]] == ["empty.tif"]
    text = run("manifest", "errors", "-m", str(db)).stdout
    assert "empty.tif: " in text
    shown = json.loads(run("manifest", "show", "autzen_trim.laz", "-m", str(db), "--json").stdout)
    assert shown["meta"]["pointcloud"]["point_count"] == 110000
    missing = run("manifest", "show", "nope.tif", "-m", str(db))
    assert missing.returncode == 1 and "not in the manifest" in missing.stderr


@pytest.mark.parametrize("layout", ["files", "ofo", "csv"])
def test_init_prints_a_config_that_loads(layout, tmp_path):
    from stacsync.config.load import load_settings

    done = run("init", "--layout", layout)
    assert done.returncode == 0
    (tmp_path / "stacsync.toml").write_text(done.stdout)
    assert load_settings(tmp_path / "stacsync.toml").collections


def test_demo_builds_a_valid_catalog(tmp_path, schema_root):
    done = run("demo", str(tmp_path / "demo"), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["errors"] == 0 and summary["items_written"] == 3
    assert summary["table_rows_without_files"] == {"ofo-missions": ["000104"]}
    validate_catalog(tmp_path / "demo" / "catalog", schema_root)


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


@pytest.mark.parametrize("name,command", _commands(cli))
def test_every_command_has_help_and_is_in_the_readme(name, command):
    assert command.help and len(command.help) > 20, f"{name} needs help text"
    readme = (REPO / "README.md").read_text()
    assert re.search(rf"stacsync {re.escape(name)}\b", readme), f"README lacks `stacsync {name}`"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} needs help"
