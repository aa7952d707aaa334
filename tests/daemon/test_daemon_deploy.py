"""The unit files and the deployment examples: systemd accepts them, the configs load."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacsync.daemon.loop import load_daemon_config

REPO = Path(__file__).resolve().parents[2]
UNITS = {"stacsync@.service": "stacsync@ofo.service", "stacsync.service": "stacsync.service"}


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_passes_systemd_analyze_verify(unit, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = (REPO / "systemd" / unit).read_text()
    # verify insists that ExecStart exists: point it at this checkout's entry point.
    here = Path(sys.executable).with_name("stacsync")
    assert "/opt/stacsync/venv/bin/stacsync run --config /etc/stacsync/" in text
    target = tmp_path / UNITS[unit]  # a template is verified through one of its instances
    target.write_text(text.replace("/opt/stacsync/venv/bin/stacsync", str(here)))
    done = subprocess.run(
        [tool, "verify", "--man=no", str(target)], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in done.stderr.splitlines() if target.name in line]
    assert done.returncode == 0 and not ours, done.stderr


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_runs_the_daemon_as_systemd_expects(unit):
    text = (REPO / "systemd" / unit).read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestartPreventExitStatus=2 3",
        "User=stacsync",
        "StateDirectory=stacsync",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in text, f"{unit} lacks {line}"


@pytest.mark.parametrize("name", ["ofo.toml", "srer-csv.toml"])
def test_deploy_examples_are_valid_configs(name):
    settings, options = load_daemon_config(REPO / "deploy" / name)
    assert str(settings.manifest_path).startswith("/var/lib/stacsync/")
    assert settings.href_rewrites and settings.public_url
    assert options.watch == "auto"


def test_the_irods_deploy_example_is_a_valid_config():
    settings, options = load_daemon_config(REPO / "deploy" / "ofo-irods.toml")
    assert settings.source_irods == "/iplant/home/shared/ofo/public"
    assert settings.output_irods == "/iplant/home/shared/ofo/public/stac"
    assert settings.public_url == (
        "https://data.cyverse.org/dav-anon/iplant/home/shared/ofo/public/stac"
    )
    table = settings.collections[0].table
    assert table is not None and table.source_relpath == (
        "metadata/all-mission-polygons-w-metadata.gpkg"
    )
    assert str(table.path).startswith("/var/lib/stacsync/ofo-irods/")
    assert options.poll_seconds == 120
