"""`stacsync api-sync`: bring the STAC API of `[stac_api]` up to the static catalog, or repair it.

A pass already pushes what changed; this catches up after an outage, or (`--full`) compares all.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from stacsync.cli.common import Failure, library_errors


@click.command("api-sync")
@click.option(
    "--config", "-c", type=click.Path(path_type=Path), required=True, help="TOML config file."
)
@click.option(
    "--full",
    is_flag=True,
    help="Compare every item the API holds with the catalog and repair what is missing, extra "
    "or different (edited behind stacsync's back).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be pushed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@library_errors
def api_sync(config: Path, full: bool, dry_run: bool, as_json: bool) -> None:
    """Push to the STAC API what it is behind by (items added, changed, removed).

    Exit 0 when the API is in step (or would be, with --dry-run), 1 when it could not be
    reached or refused some items (listed), 2 on a bad command line or config.
    """
    from stacsync.config.load import load_settings
    from stacsync.manifest.db import Manifest
    from stacsync.pipeline.api_push import ApiPusher

    settings = load_settings(config)
    if settings.stac_api is None:
        raise Failure(f"{config}: no [stac_api] section: nothing to sync", 2)
    # A dry run only reads, so it works beside a running daemon.
    open_db = Manifest.open_reader if dry_run else Manifest.open_writer
    with (
        open_db(settings.manifest_path) as db,
        ApiPusher(settings, settings.stac_api, db, dry_run=dry_run) as pusher,
    ):
        summary = pusher.full() if full else pusher.push()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        click.echo(_text(summary))
    if summary.unavailable or summary.refused:
        raise SystemExit(1)


def _text(s) -> str:
    verb = "would push" if s.dry_run else "pushed"
    lines = [
        f"STAC API {s.api}: {verb} {s.items_upserted} items, deleted {s.items_deleted}, "
        f"{s.collections_written} collections ({s.requests} requests, {s.seconds:.2f} s)"
    ]
    if s.missing or s.extra or s.different:
        lines.append(f"  compared: {s.missing} missing, {s.extra} extra, {s.different} different")
    for where, message in sorted(s.refused.items()):
        lines.append(f"  refused {where}: {message}")
    if s.unavailable:
        lines.append(f"  not reachable: {s.unavailable}")
    lines.append(f"  behind afterwards: {s.behind} items")
    return "\n".join(lines)
