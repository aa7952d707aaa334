"""The `stacsync` command group: rescan, init, demo and run; manifest and validate join it here.

`main` is the console-script entry point.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from stacsync import __version__
from stacsync.cli.api import api_sync
from stacsync.cli.common import (
    Failure,
    Progress,
    library_errors,
    setup_logging,
)
from stacsync.cli.manifest import manifest
from stacsync.cli.report import human_summary
from stacsync.cli.validate import validate
from stacsync.config.kinds import MIN_INTERVAL
from stacsync.config.registry import WATCH_MODES, default_of


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stacsync")
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Keep a static STAC catalog true to a folder of drone and geospatial products."""
    setup_logging(verbose, quiet)


cli.add_command(api_sync)
cli.add_command(manifest)
cli.add_command(validate)


# `rescan` and `run` both take it.
scheduler_option = click.option(
    "--scheduler",
    help="A Dask scheduler (tcp://host:8786) whose workers extract headers; overrides "
    "[scale] scheduler (docs/scale.md).",
)


# -- rescan ------------------------------------------------------------------------------


@cli.command()
@click.argument("source", required=False)
@click.option("--config", "-c", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Catalog folder.")
@click.option("--manifest", "-m", type=click.Path(path_type=Path), help="Manifest database.")
@click.option("--public-url", help="Absolute URL the output folder is served at.")
@click.option("--endpoint-url", help="Quick form, s3:// SOURCE: the S3 API endpoint (not AWS).")
@click.option(
    "--anonymous", is_flag=True, help="Quick form, s3:// SOURCE: unsigned requests (public bucket)."
)
@click.option(
    "--min-files",
    type=click.IntRange(min=0),
    help="Quick form: fewer matching files than this is a failed listing "
    f"(default {default_of('source', 'min_files')}).",
)
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@library_errors
def rescan(
    source: str | None,
    config: Path | None,
    output: Path | None,
    manifest: Path | None,
    public_url: str | None,
    endpoint_url: str | None,
    anonymous: bool,
    min_files: int | None,
    scheduler: str | None,
    as_json: bool,
) -> None:
    """Run one full pass: list SOURCE, update the manifest, rewrite what changed.

    Either give --config, or SOURCE with --output and --manifest (one collection named
    after the folder, one item per file). SOURCE is a folder or s3://bucket/prefix/
    (with --endpoint-url for a store that is not AWS, --anonymous for a public bucket;
    credentials come from the AWS environment variables or files). Files that cannot be
    read are recorded as errors in the manifest and the pass goes on; the exit code is 0
    whenever the pass completed.
    A source that cannot be listed, or lists fewer files than --min-files (source.min_files),
    exits 1 and writes nothing.
    """
    from stacsync.pipeline.witness import rescan as run_pass  # leaves cli.fast its witness

    quick = source or output or manifest or public_url or min_files or endpoint_url or anonymous
    if config is not None and quick:
        raise Failure("give either --config or SOURCE/--output/--manifest, not both", 2)
    if config is None and not (source and output and manifest):
        raise Failure("give --config FILE, or SOURCE with --output and --manifest", 2)
    progress = Progress() if (not as_json and sys.stderr.isatty()) else None
    try:
        summary = run_pass(
            config,
            source=source,
            output=output,
            manifest=manifest,
            public_url=public_url,
            min_files=min_files,
            progress=progress,
            endpoint_url=endpoint_url,
            anonymous=anonymous,
            scheduler=scheduler,
        )
    finally:
        if progress:
            progress.close()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        click.echo(human_summary(summary.to_dict()))


# -- init --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--layout",
    type=click.Choice(["files", "ofo", "ofo-s3", "csv"]),
    default="files",
    show_default=True,
    help="Which example: one item per file, OFO missions with a GeoPackage, the OFO bucket "
    "on S3 (per-mission GeoPackages and thumbnails), or a CSV.",
)
def init(layout: str) -> None:
    """Print a commented example config to stdout (redirect it to a .toml file)."""
    from stacsync.config.text import example_config

    click.echo(example_config(layout), nl=False)


# -- demo --------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--missions", default=3, show_default=True, help="How many OFO-style missions.")
@click.option("--json", "as_json", is_flag=True, help="Print the pass summary as JSON.")
@library_errors
def demo(directory: Path, missions: int, as_json: bool) -> None:
    """Make a small sample tree (real GeoTIFFs, LAZ, GeoPackage) in DIRECTORY and rescan it."""
    from stacsync.demo import demo_config_toml, make_demo_tree
    from stacsync.pipeline.sync import rescan as run_pass

    directory = directory.resolve()
    tree = make_demo_tree(directory / "data", missions=missions)
    config = directory / "stacsync.toml"
    config.write_text(
        demo_config_toml(tree, directory / "catalog", directory / "stacsync.db"), encoding="utf-8"
    )
    summary = run_pass(config)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
        return
    click.echo(f"Sample data: {tree.root} ({len(tree.files)} files)")
    click.echo(f"Config:      {config}")
    click.echo(human_summary(summary.to_dict()))
    click.echo(f"\nOpen {directory / 'catalog' / 'catalog.json'} in a STAC browser, or try:")
    click.echo(f"  stacsync manifest summary --config {config}")


# -- run ---------------------------------------------------------------------------------


@cli.command()
@click.option("--config", "-c", required=True, type=click.Path(path_type=Path), help="TOML config.")
@click.option(
    "--watch",
    type=click.Choice(WATCH_MODES),
    help="How to notice changes (overrides [daemon] watch; auto polls FUSE/NFS/SMB mounts).",
)
@click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0),
    help="A changed file must keep its size and mtime this long before a pass "
    f"(default {default_of('daemon', 'settle_seconds'):g}).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=MIN_INTERVAL),
    help=f"Seconds between stat-diff passes when polling "
    f"(default {default_of('daemon', 'poll_seconds'):g}).",
)
@click.option(
    "--reconcile-seconds",
    type=click.FloatRange(min=MIN_INTERVAL),
    help="Seconds between full reconciles while watching events "
    f"(default {default_of('daemon', 'reconcile_seconds'):g}).",
)
@scheduler_option
@library_errors
def run(
    config: Path,
    watch: str | None,
    settle_seconds: float | None,
    poll_seconds: float | None,
    reconcile_seconds: float | None,
    scheduler: str | None,
) -> None:
    """Keep the catalog in sync until stopped: a full pass, then follow changes.

    Takes the manifest lock (a second `run` on the same manifest exits 3), runs one full
    pass, then watches the source (inotify events, or polling on FUSE/NFS/SMB mounts) and
    runs a pass on each batch of settled changes, plus a full reconcile every hour. One log
    line per pass on stderr. SIGTERM/SIGINT stop after the current commit (exit 0), SIGHUP
    reloads the config (a bad one is reported and the old one kept), SIGUSR1 asks for a full
    pass now. Under systemd (Type=notify) it reports READY, STATUS and WATCHDOG.
    """
    from stacsync.daemon.journal import JournalFormatter, stderr_is_journal
    from stacsync.daemon.loop import Daemon

    root = click.get_current_context().find_root().params
    if not root.get("quiet") and not root.get("verbose"):
        # One line per pass from the daemon, which names what triggered it; the pass's own
        # line would repeat it.
        logging.getLogger("stacsync").setLevel(logging.INFO)
        logging.getLogger("stacsync.pipeline.sync").setLevel(logging.WARNING)
    if stderr_is_journal():
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournalFormatter())
    overrides = {
        "watch": watch,
        "settle_seconds": settle_seconds,
        "poll_seconds": poll_seconds,
        "reconcile_seconds": reconcile_seconds,
        "scheduler": scheduler,  # [scale], not [daemon]: see load_daemon_config
    }
    daemon = Daemon(config, overrides={k: v for k, v in overrides.items() if v is not None})
    daemon.run()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stacsync")
