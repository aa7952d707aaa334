"""`[stac_api]` in the config, and an API that cannot be reached at all.

The password never sits in the config; a down API never fails the pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from stac_api_servers import assert_converged, free_port, write_setup

from stacsync.config.load import load_settings
from stacsync.core.errors import ConfigError
from stacsync.manifest.api_acks import ApiAcks
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import rescan

BASE = """
[source]
path = "src"
[output]
path = "catalog"
[manifest]
path = "stacsync.db"
[[collection]]
id = "c"
match = '^(?P<item>.+)$'
[stac_api]
"""


def load(tmp_path: Path, api: str):
    (tmp_path / "src").mkdir(exist_ok=True)
    config = tmp_path / "stacsync.toml"
    config.write_text(BASE + api, encoding="utf-8")
    return load_settings(config)


def test_pgstac_settings_load(tmp_path) -> None:
    api = load(tmp_path, 'kind = "pgstac"\ndsn = "postgresql://me@db:5432/stac"\n').stac_api
    assert (api.kind, api.dsn, api.batch_size, api.retries) == (
        "pgstac",
        "postgresql://me@db:5432/stac",
        500,
        4,
    )
    assert load(tmp_path, 'kind = "transactions"\nurl = "http://x/"\n').stac_api.url == "http://x"


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ('kind = "pgstac"\ndsn = "postgresql://me:secret@db/stac"\n', "stac_api.dsn: must not"),
        ('kind = "pgstac"\ndsn = "host=db password=secret"\n', "stac_api.dsn: must not"),
        ('kind = "pgstac"\n', "stac_api.dsn: required"),
        ('kind = "transactions"\n', "stac_api.url: required"),
        ('kind = "elastic"\n', "stac_api.kind"),
        ('kind = "transactions"\nurl = "http://u:p@x"\n', "stac_api.url"),
    ],
)
def test_bad_settings_are_refused(tmp_path, api, message) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, api)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def behind(tmp_path: Path) -> int:
    with Manifest.open_reader(tmp_path / "stacsync.db") as db:
        return ApiAcks(db.conn).backlog().behind


def test_an_api_that_is_down_waits_for_the_next_pass(tmp_path, testdata, stac_fastapi) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    toml = f'kind = "transactions"\nurl = "{down}"\nretries = 2\n'
    files = ["RGB.byte.tif", "elev.tif"]
    config, cid, output = write_setup(tmp_path, toml, files, testdata)
    summary = rescan(config)
    assert summary.items_written == 2 and len(list((output / cid).glob("*/*.json"))) == 2
    assert behind(tmp_path) == 2
    config.write_text(config.read_text().replace(down, stac_fastapi.url))
    rescan(config)  # the same API back (here: at another address): it catches up
    assert behind(tmp_path) == 0
    assert_converged(stac_fastapi.url, output, cid)


def test_a_missing_token_leaves_the_api_behind(tmp_path, testdata, stac_fastapi, monkeypatch):
    monkeypatch.delenv("STACSYNC_TEST_TOKEN", raising=False)
    toml = f'kind = "transactions"\nurl = "{stac_fastapi.url}"\ntoken_env = "STACSYNC_TEST_TOKEN"\n'
    config, cid, output = write_setup(tmp_path, toml, ["elev.tif"], testdata)
    assert rescan(config).items_written == 1
    assert behind(tmp_path) == 1
    monkeypatch.setenv("STACSYNC_TEST_TOKEN", "t0ken")  # stac-fastapi takes any bearer token
    rescan(config)
    assert behind(tmp_path) == 0
    assert_converged(stac_fastapi.url, output, cid)
