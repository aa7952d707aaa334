"""Collection `match` patterns on RE2: linear time whatever a file name holds, refusals named."""

from __future__ import annotations

import json
import shutil

import pytest
from processes import cli

from stacsync.config.load import load_settings
from stacsync.config.patterns import PathPattern
from stacsync.core.errors import ConfigError

RASTER = "byte.tif"


def _config(folder, match):
    (folder / "src").mkdir(exist_ok=True)
    config = folder / "stacsync.toml"
    config.write_text(
        '[source]\npath = "src"\n[output]\npath = "catalog"\n[manifest]\npath = "stacsync.db"\n'
        f"[[collection]]\nid = \"c\"\nmatch = '{match}'\n",
        encoding="utf-8",
    )
    return config


def test_groups_are_exact_slices_of_any_name():
    pattern = PathPattern(r"^(?P<item>[^/]+)/(?P<asset>.+)\.tif$")
    name = "x\udcff\udcfeé/a\nb\udcff.tif"  # bytes that are not UTF-8, a newline
    assert pattern.search(name) == {"item": "x\udcff\udcfeé", "asset": "a\nb\udcff"}
    assert PathPattern(r"(?P<item>.)").search("\udcff") == {"item": "\udcff"}
    assert PathPattern(r"^(?P<item>x)(?P<asset>y)?$").search("x") == {"item": "x"}


def test_a_backtracking_pattern_cannot_stall_a_pass(testdata, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(testdata / RASTER, src / ("a" * 40 + "0!.tif"))
    shutil.copyfile(testdata / RASTER, src / ("a" * 240 + "!.tif"))
    shutil.copyfile(testdata / RASTER, src / "aaaa.tif")  # the one name the pattern takes
    config = _config(tmp_path, match=r"^(?P<item>(a+)+)\.tif$")
    # With Python's re the first name takes 2**40 steps; the CLI's own time-out is the bound.
    done = cli("rescan", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["unmatched"] == 2 and summary["items_written"] == 1
    errors = cli("manifest", "errors", "--config", str(config))
    assert "matches no collection's `match` pattern" in errors.stdout


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"^(?P<item>a)\1$", "backreferences are not supported"),
        (r"^(?P<item>a)(?P=item)$", "invalid regex"),
        (r"^(?P<item>.+)(?=\.tif)", "lookahead and lookbehind are not supported"),
        (r"(?<!x)(?P<item>.+)", "lookahead and lookbehind are not supported"),
    ],
)
def test_patterns_re2_cannot_take_are_refused_at_load_naming_the_key(tmp_path, pattern, reason):
    (tmp_path / "src").mkdir()
    with pytest.raises(ConfigError) as refused:
        load_settings(_config(tmp_path, pattern))
    assert str(refused.value).startswith("collection[0].match: invalid regex")
    assert reason in str(refused.value)
