"""`stacsync manifest …`: read-only views of the manifest database (summary, files, errors, show).

They open the database read-only and work while a daemon holds the writer lock.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from stacsync.cli.common import (
    Failure,
    indent,
    library_errors,
)
from stacsync.cli.report import human_summary
from stacsync.core.names import display
from stacsync.core.records import FileState
from stacsync.manifest import queries


def manifest_options(fn):
    fn = click.option(
        "--config", "-c", type=click.Path(path_type=Path), help="Config naming the manifest."
    )(fn)
    fn = click.option("--manifest", "-m", type=click.Path(path_type=Path), help="Manifest file.")(
        fn
    )
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)
    return fn


def open_reader(manifest: Path | None, config: Path | None):
    from stacsync.manifest.db import Manifest

    if manifest is None and config is None:
        raise Failure("give --manifest DB or --config FILE", 2)
    if manifest is None:
        from stacsync.config.load import load_settings

        manifest = load_settings(config).manifest_path
    return Manifest.open_reader(manifest)


@click.group()
def manifest() -> None:
    """Inspect the manifest database (read-only; works while a daemon runs)."""


@manifest.command()
@manifest_options
@library_errors
def summary(manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Counts by status and collection, and the last pass's figures."""
    from stacsync.manifest.api_acks import api_backlog

    with open_reader(manifest, config) as db:
        data = queries.summary(db)
        backlog = api_backlog(db.conn, configured=_api_configured(manifest, config))
    data["api"] = None if backlog is None else {**asdict(backlog), "behind": backlog.behind}
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    click.echo(f"Manifest: {data['manifest']} (schema {data['schema_version']})")
    click.echo(f"Files: {data['files']}  Items: {data['items']}")
    for status, count in data["by_status"].items():
        click.echo(f"  {status:10} {count}")
    for cid, counts in data["by_collection"].items():
        click.echo(f"  collection {cid}: {counts['files']} files in {counts['items']} items")
    if backlog is not None:
        refused = f" ({backlog.refused} refused by the API)" if backlog.refused else ""
        click.echo(f"api: {backlog.behind} items behind{refused}")
    last = data["last_pass"]
    if last:
        click.echo(f"Last pass: finished {last['finished']}")
        if last["summary"]:
            click.echo(indent(human_summary(last["summary"])))


def _api_configured(manifest: Path | None, config: Path | None) -> bool:
    """Whether the config (when the manifest was named through one) has a `[stac_api]`."""
    if manifest is not None or config is None:
        return False
    from stacsync.config.load import load_settings

    return load_settings(config).stac_api is not None


@manifest.command()
@manifest_options
@click.option(
    "--status",
    type=click.Choice([s.value for s in FileState]),
    help="Only files with this status.",
)
@click.option("--collection", help="Only files of this collection.")
@click.option("--glob", "pattern", help="Only paths matching this glob (e.g. 'missions/*').")
@library_errors
def files(
    manifest: Path | None,
    config: Path | None,
    as_json: bool,
    status: str | None,
    collection: str | None,
    pattern: str | None,
) -> None:
    """List files with their status, item and size."""
    with open_reader(manifest, config) as db:
        rows = queries.files(db, status=status, collection=collection, glob=pattern)
        known = queries.summary(db)["by_collection"] if collection is not None and not rows else {}
    if not rows:
        _say_nothing_matched(status, collection, pattern, known)
    rows = [_shown(row) for row in rows]
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    for row in rows:
        item = f"{row['collection_id']}/{row['item_id']}" if row["item_id"] else "-"
        click.echo(f"{row['status']:9} {row['size']:>12} {item:40} {row['path']}")


def _say_nothing_matched(
    status: str | None, collection: str | None, pattern: str | None, known: dict[str, Any]
) -> None:
    filters = [
        f"--{k} {v}"
        for k, v in (("status", status), ("collection", collection), ("glob", pattern))
        if v is not None
    ]
    message = "no files match " + " ".join(filters) if filters else "the manifest lists no files"
    if collection is not None and collection not in known:
        names = ", ".join(sorted(known)) or "none"
        message += f" (no collection {collection!r} has files; collections: {names})"
    click.echo(message, err=True)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row with its path printable: names may hold any bytes, newlines included."""
    return {**row, "path": display(row["path"])} if "path" in row else row


@manifest.command()
@manifest_options
@library_errors
def errors(manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Files in error (message, since when), files lacking a table row, rows lacking files."""
    with open_reader(manifest, config) as db:
        rows = db.errors()
        problems = queries.problems(db)
        last = queries.summary(db)["last_pass"]
    unused = (last or {}).get("summary", {}).get("table_rows_without_files", {})
    rows, problems = [_shown(r) for r in rows], [_shown(r) for r in problems]
    if as_json:
        report = {"errors": rows, "problems": problems, "table_rows_without_files": unused}
        click.echo(json.dumps(report, sort_keys=True))
        return
    for row in rows:
        again = " (will retry)" if row["error_transient"] else ""
        click.echo(f"{row['path']}\n    {row['error']}{again}\n    since {row['error_since']}")
    for row in problems:
        click.echo(f"{row['path']}\n    note: {row['problem']}")
    for cid, keys in unused.items():
        click.echo(f"{cid}: metadata-table rows with no files: {', '.join(keys)}")
    if not rows and not problems and not unused:
        click.echo("No errors.")


@manifest.command()
@click.argument("path")
@manifest_options
@library_errors
def show(path: str, manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Everything known about one file (PATH relative to the source root)."""
    with open_reader(manifest, config) as db:
        row = queries.show(db, path) or queries.show(db, _by_display(db, path))
    if row is None:
        raise Failure(f"{path}: not in the manifest (paths are relative to the source)", 1)
    row = _shown(row)
    if as_json:
        click.echo(json.dumps(row, sort_keys=True))
        return
    meta = row.pop("meta", None)
    for key, value in row.items():
        click.echo(f"{key:16} {value}")
    if meta:
        click.echo("meta:")
        click.echo(indent(json.dumps(meta, indent=2, sort_keys=True)))


def _by_display(db: Any, shown: str) -> str:
    """The stored path printed as `shown` (a name with escapes, copied from a listing)."""
    return next((p for p in db.paths() if display(p) == shown), shown)
