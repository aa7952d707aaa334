"""`--scheduler` on `stacsync rescan` and `stacsync run`: a Dask scheduler over the config's.

No cluster here: tests/pipeline/test_distributed.py runs one.
"""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner
from helpers import GOOD, age

import stacsync.daemon.loop
from stacsync.cli.main import cli
from stacsync.daemon.loop import load_daemon_config
from stacsync.pipeline.distributed import DaskExtraction

CONFIG = """
[source]
path = "src"
[output]
path = "catalog"
[scale]
scheduler = "tcp://scheduler.example.org:8786"
[[collection]]
id = "drone"
match = '(?P<item>[^/]+)$'
"""


def free_address() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_rescan_scheduler_that_cannot_be_reached_exits_1_naming_it(
    copy_testdata, tmp_path: Path, monkeypatch
) -> None:
    src = copy_testdata(GOOD[0], dest=tmp_path / "src")
    age(src)
    address = free_address()
    monkeypatch.setattr(DaskExtraction, "connect_seconds", 1.0)
    args = [str(src), "-o", str(tmp_path / "catalog"), "-m", str(tmp_path / "db.sqlite")]
    result = CliRunner().invoke(cli, ["rescan", *args, "--scheduler", address])
    assert result.exit_code == 1, result.output
    assert f"Dask scheduler {address} cannot be reached" in result.output
    assert not (tmp_path / "catalog" / "catalog.json").exists()


def test_run_scheduler_replaces_the_configs(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "src").mkdir()
    config = tmp_path / "stacsync.toml"
    config.write_text(CONFIG, encoding="utf-8")
    loaded = []

    class Daemon:
        def __init__(self, path: Path, overrides: dict) -> None:
            loaded.append(load_daemon_config(path, overrides)[0])

        def run(self) -> None:
            pass

    monkeypatch.setattr(stacsync.daemon.loop, "Daemon", Daemon)
    for extra in ([], ["--scheduler", "tcp://127.0.0.1:8786"]):
        result = CliRunner().invoke(cli, ["run", "--config", str(config), *extra])
        assert result.exit_code == 0, result.output
    assert [s.scheduler for s in loaded] == [
        "tcp://scheduler.example.org:8786",
        "tcp://127.0.0.1:8786",
    ]
