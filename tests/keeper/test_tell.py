"""Tests for stacsync.keeper.tell through real passes: the parent-catalog link and the mail."""

from __future__ import annotations

import json
import shutil
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from helpers import age
from test_mail import Inbox, start

from stacsync.manifest.state import PARENT_STATE_KEY
from stacsync.pipeline.sync import rescan

CONFIG = """
[source]
path = "drone"
[output]
path = "catalog"
{output_extra}
[[collection]]
id = "drone"
title = "Drone products"
match = '^(?P<item>[^/]+)\\.(tif|laz)$'
{extra}
"""

PARENT = {
    "type": "Catalog",
    "stac_version": "1.1.0",
    "id": "keeper",
    "description": "The keeper's catalog",
    "links": [{"rel": "self", "href": "https://example.org/catalog.json"}],
}


@pytest.fixture
def tree(copy_testdata, tmp_path: Path) -> Path:
    copy_testdata("byte.tif", "autzen_trim.laz", dest=tmp_path / "drone")
    age(tmp_path / "drone")
    return tmp_path


def config(tmp_path: Path, output_extra: str = "", extra: str = "") -> Path:
    path = tmp_path / "stacsync.toml"
    path.write_text(CONFIG.format(output_extra=output_extra, extra=extra))
    return path


def test_the_catalog_is_linked_into_its_parent_once(tree: Path, schema_root) -> None:
    parent = tree / "keeper" / "catalog.json"
    cfg = config(tree, output_extra=f'parent_catalog = "{parent}"')

    rescan(cfg)  # no parent yet: a warning, and the pass goes on
    parent.parent.mkdir()
    parent.write_text(json.dumps(PARENT, indent=2))
    rescan(cfg)
    links = json.loads(parent.read_text())["links"]
    assert links[1] == {
        "rel": "child",
        "href": "../catalog/catalog.json",
        "type": "application/json",
    }
    from stacsync.check.schemas import SchemaValidator

    assert SchemaValidator(schema_root).errors(json.loads(parent.read_text())) == []

    # Linked once: a keeper who removes the link is not overruled on the next pass.
    parent.write_text(json.dumps(PARENT, indent=2))
    rescan(cfg)
    assert json.loads(parent.read_text()) == PARENT


def test_a_parent_that_cannot_be_read_is_a_warning(tree: Path, caplog) -> None:
    parent = tree / "keeper.json"
    parent.write_text("not json")
    summary = rescan(config(tree, output_extra=f'parent_catalog = "{parent}"'))
    assert summary.added == 2
    assert "keeper.json" in caplog.text and "not JSON" in caplog.text
    assert parent.read_text() == "not json"
    import sqlite3

    with sqlite3.connect(tree / "stacsync.db") as conn:
        state = conn.execute("SELECT value FROM state WHERE key = ?", (PARENT_STATE_KEY,))
        assert state.fetchone() is None  # tried again after the next pass


@pytest.fixture
def mail_server():
    inbox = Inbox()
    for port in start(inbox):
        yield inbox, port


def test_the_keeper_is_mailed_about_new_collections_and_new_errors(
    tree: Path, mail_server, testdata: Path
) -> None:
    inbox, port = mail_server
    notify = (
        f'[notify]\nhost = "127.0.0.1"\nport = {port}\nfrom = "stacsync@example.org"\n'
        'to = ["keeper@example.org"]\ntimeout = 5\n'
    )
    cfg = config(tree, extra=notify)

    rescan(cfg)
    assert len(inbox.envelopes) == 1
    first = message_from_bytes(inbox.envelopes[0].content, policy=policy.default)
    assert "Drone products" in first["Subject"] or "drone" in first["Subject"]

    rescan(cfg)  # nothing new: no mail
    assert len(inbox.envelopes) == 1

    shutil.copyfile(testdata / "not_a_tiff.tif", tree / "drone" / "broken.tif")
    age(tree / "drone")
    summary = rescan(cfg)
    assert summary.new_errors == 1
    assert len(inbox.envelopes) == 2
    second = message_from_bytes(inbox.envelopes[1].content, policy=policy.default)
    assert "broken.tif" in second.get_content()

    rescan(cfg)  # the same error again is not news
    assert len(inbox.envelopes) == 2


def test_the_child_link_leads_to_the_root_catalog_the_pass_published(tree: Path) -> None:
    """The keeper links the file the renderer wrote: its URL is the root catalog's self link."""
    parent = tree / "keeper.json"
    parent.write_text(json.dumps(PARENT, indent=2))
    url = "https://example.org/drone"
    rescan(config(tree, output_extra=f'parent_catalog = "{parent}"\npublic_url = "{url}"'))
    child = json.loads(parent.read_text())["links"][1]
    assert child["rel"] == "child" and child["href"].startswith(f"{url}/")
    root = json.loads((tree / "catalog" / child["href"].removeprefix(f"{url}/")).read_text())
    assert root["type"] == "Catalog"
    assert {"rel": "self", "href": child["href"]}.items() <= next(
        link for link in root["links"] if link["rel"] == "self"
    ).items()
