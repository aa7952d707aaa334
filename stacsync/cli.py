"""The `stacsync` command line: rescan, init, manifest inspection and the demo.

Library errors become one line on stderr and a non-zero exit here, and only here.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from stacsync import __version__
from stacsync.core.errors import ConfigError, ManifestLockedError, OutputError, StacsyncError
from stacsync.core.names import display
from stacsync.core.records import FileState

log = logging.getLogger("stacsync")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_OUTPUT = 4


class _Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _library_errors(fn):
    """Turn StacsyncError into a one-line message with a documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise _Failure(f"config: {exc}", EXIT_CONFIG) from exc
        except ManifestLockedError as exc:
            raise _Failure(str(exc), EXIT_LOCKED) from exc
        except OutputError as exc:
            raise _Failure(str(exc), EXIT_OUTPUT) from exc
        except StacsyncError as exc:
            raise _Failure(str(exc), EXIT_FAILED) from exc

    return wrapper


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose > 1:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stacsync")
@click.option("-v", "--verbose", count=True, help="More log lines on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Keep a static STAC catalog true to a folder of drone and geospatial products."""
    _setup_logging(verbose, quiet)


# -- rescan ------------------------------------------------------------------------------


@cli.command()
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--config", "-c", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Catalog folder.")
@click.option("--manifest", "-m", type=click.Path(path_type=Path), help="Manifest database.")
@click.option("--public-url", help="Absolute URL the output folder is served at.")
@click.option(
    "--min-files",
    type=click.IntRange(min=0),
    help="Quick form: fewer matching files than this is a failed listing (default 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
@_library_errors
def rescan(
    source: Path | None,
    config: Path | None,
    output: Path | None,
    manifest: Path | None,
    public_url: str | None,
    min_files: int | None,
    as_json: bool,
) -> None:
    """Run one full pass: list SOURCE, update the manifest, rewrite what changed.

    Either give --config, or SOURCE with --output and --manifest (one collection named
    after the folder, one item per file). Files that cannot be read are recorded as errors
    in the manifest and the pass goes on; the exit code is 0 whenever the pass completed.
    A source that cannot be listed, or lists fewer files than --min-files (source.min_files),
    exits 1 and writes nothing.
    """
    from stacsync.pipeline.sync import rescan as run_pass

    if config is not None and (source or output or manifest or public_url or min_files):
        raise _Failure("give either --config or SOURCE/--output/--manifest, not both", 2)
    if config is None and not (source and output and manifest):
        raise _Failure("give --config FILE, or SOURCE with --output and --manifest", 2)
    progress = _Progress() if (not as_json and sys.stderr.isatty()) else None
    try:
        summary = run_pass(
            config,
            source=source,
            output=output,
            manifest=manifest,
            public_url=public_url,
            min_files=min_files,
            progress=progress,
        )
    finally:
        if progress:
            progress.close()
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        click.echo(_human_summary(summary.to_dict()))


class _Progress:
    """A one-line progress display on stderr, only used on a terminal."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        line = f"\r{phase:8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            sys.stderr.write("\r" + " " * len(self._last) + "\r")
            sys.stderr.flush()


def _human_summary(s: dict[str, Any]) -> str:
    lines = [
        f"Catalog: {s['output']}",
        f"Files:   {s['added']} added, {s['modified']} modified, {s['touched']} touched, "
        f"{s['removed']} removed, {s['unchanged']} unchanged, {s['deferred']} deferred"
        + (f", {s['unmatched']} matching no collection" if s["unmatched"] else ""),
        f"Written: {s['items_written']} items, {s['items_deleted']} items deleted, "
        f"{s['collections_written']} collections"
        + (", catalog.json" if s["catalog_written"] else "")
        + (", index.geojson" if s["index_written"] else ""),
    ]
    if s["errors"]:
        lines.append(
            f"Errors:  {s['errors']} files ({s['new_errors']} new) — see `stacsync manifest errors`"
        )
    if s["files_without_rows"]:
        lines.append(f"Note:    {s['files_without_rows']} files have no metadata-table row")
    for cid, keys in s["table_rows_without_files"].items():
        shown = ", ".join(keys[:5]) + (" …" if len(keys) > 5 else "")
        lines.append(f"Note:    {cid}: {len(keys)} table rows without files ({shown})")
    for problem in s["listing_problems"][:5]:
        lines.append(f"Listing: {problem}")
    lines.append(f"Took {s['seconds']:.2f} s")
    return "\n".join(lines)


# -- init --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--layout",
    type=click.Choice(["files", "ofo", "csv"]),
    default="files",
    show_default=True,
    help="Which example: one item per file, OFO missions with a GeoPackage, or a CSV.",
)
def init(layout: str) -> None:
    """Print a commented example config to stdout (redirect it to a .toml file)."""
    from stacsync.config.text import example_config

    click.echo(example_config(layout), nl=False)


# -- manifest ----------------------------------------------------------------------------


def _manifest_options(fn):
    fn = click.option(
        "--config", "-c", type=click.Path(path_type=Path), help="Config naming the manifest."
    )(fn)
    fn = click.option("--manifest", "-m", type=click.Path(path_type=Path), help="Manifest file.")(
        fn
    )
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)
    return fn


def _open_reader(manifest: Path | None, config: Path | None):
    from stacsync.manifest import Manifest

    if manifest is None and config is None:
        raise _Failure("give --manifest DB or --config FILE", 2)
    if manifest is None:
        from stacsync.config import load_settings

        manifest = load_settings(config).manifest_path
    return Manifest.open_reader(manifest)


@cli.group()
def manifest() -> None:
    """Inspect the manifest database (read-only; works while a daemon runs)."""


@manifest.command()
@_manifest_options
@_library_errors
def summary(manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Counts by status and collection, and the last pass's figures."""
    with _open_reader(manifest, config) as db:
        data = db.summary()
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    click.echo(f"Manifest: {data['manifest']} (schema {data['schema_version']})")
    click.echo(f"Files: {data['files']}  Items: {data['items']}")
    for status, count in data["by_status"].items():
        click.echo(f"  {status:10} {count}")
    for cid, counts in data["by_collection"].items():
        click.echo(f"  collection {cid}: {counts['files']} files in {counts['items']} items")
    last = data["last_pass"]
    if last:
        click.echo(f"Last pass: finished {last['finished']}")
        if last["summary"]:
            click.echo(_indent(_human_summary(last["summary"])))


@manifest.command()
@_manifest_options
@click.option(
    "--status",
    type=click.Choice([s.value for s in FileState]),
    help="Only files with this status.",
)
@click.option("--collection", help="Only files of this collection.")
@click.option("--glob", "pattern", help="Only paths matching this glob (e.g. 'missions/*').")
@_library_errors
def files(
    manifest: Path | None,
    config: Path | None,
    as_json: bool,
    status: str | None,
    collection: str | None,
    pattern: str | None,
) -> None:
    """List files with their status, item and size."""
    with _open_reader(manifest, config) as db:
        rows = db.files(status=status, collection=collection, glob=pattern)
        known = db.summary()["by_collection"] if collection is not None and not rows else {}
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
@_manifest_options
@_library_errors
def errors(manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Files in error (message, since when), files lacking a table row, rows lacking files."""
    with _open_reader(manifest, config) as db:
        rows = db.errors()
        problems = db.problems()
        last = db.summary()["last_pass"]
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
@_manifest_options
@_library_errors
def show(path: str, manifest: Path | None, config: Path | None, as_json: bool) -> None:
    """Everything known about one file (PATH relative to the source root)."""
    with _open_reader(manifest, config) as db:
        row = db.show(path) or db.show(_by_display(db, path))
    if row is None:
        raise _Failure(f"{path}: not in the manifest (paths are relative to the source)", 1)
    row = _shown(row)
    if as_json:
        click.echo(json.dumps(row, sort_keys=True))
        return
    meta = row.pop("meta", None)
    for key, value in row.items():
        click.echo(f"{key:16} {value}")
    if meta:
        click.echo("meta:")
        click.echo(_indent(json.dumps(meta, indent=2, sort_keys=True)))


def _by_display(db: Any, shown: str) -> str:
    """The stored path printed as `shown` (a name with escapes, copied from a listing)."""
    return next((p for p in db.paths() if display(p) == shown), shown)


# -- demo --------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--missions", default=3, show_default=True, help="How many OFO-style missions.")
@click.option("--json", "as_json", is_flag=True, help="Print the pass summary as JSON.")
@_library_errors
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
    click.echo(_human_summary(summary.to_dict()))
    click.echo(f"\nOpen {directory / 'catalog' / 'catalog.json'} in a STAC browser, or try:")
    click.echo(f"  stacsync manifest summary --config {config}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# -- run ---------------------------------------------------------------------------------


@cli.command()
@click.option("--config", "-c", required=True, type=click.Path(path_type=Path), help="TOML config.")
@click.option(
    "--watch",
    type=click.Choice(["auto", "events", "poll"]),
    help="How to notice changes (overrides [daemon] watch; auto polls FUSE/NFS/SMB mounts).",
)
@click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0),
    help="A changed file must keep its size and mtime this long before a pass (default 30).",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    help="Seconds between stat-diff passes when polling (default 120).",
)
@click.option(
    "--reconcile-seconds",
    type=click.FloatRange(min=0.1),
    help="Seconds between full reconciles while watching events (default 3600).",
)
@_library_errors
def run(
    config: Path,
    watch: str | None,
    settle_seconds: float | None,
    poll_seconds: float | None,
    reconcile_seconds: float | None,
) -> None:
    """Keep the catalog in sync until stopped: a full pass, then follow changes.

    Takes the manifest lock (a second `run` on the same manifest exits 3), runs one full
    pass, then watches the source (inotify events, or polling on FUSE/NFS/SMB mounts) and
    runs a pass on each batch of settled changes, plus a full reconcile every hour. One log
    line per pass on stderr. SIGTERM/SIGINT stop after the current commit (exit 0), SIGHUP
    reloads the config (a bad one is reported and the old one kept), SIGUSR1 asks for a full
    pass now. Under systemd (Type=notify) it reports READY, STATUS and WATCHDOG.
    """
    from stacsync.daemon.loop import Daemon, JournalFormatter, stderr_is_journal

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
    }
    daemon = Daemon(config, overrides={k: v for k, v in overrides.items() if v is not None})
    daemon.run()


# -- validate ----------------------------------------------------------------------------


@cli.command()
@click.argument(
    "output", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path),
    help="Take OUTPUT, its public URL and the href rewrites (asset URLs back to local files) "
    "from this config.",
)
@click.option(
    "--public-url",
    "public_urls",
    multiple=True,
    metavar="URL",
    help="A URL OUTPUT is served at: hrefs under it are checked in OUTPUT (repeatable; the "
    "root catalog's self link is used too).",
)
@click.option(
    "--source-url",
    "source_urls",
    multiple=True,
    metavar="URL=PATH",
    help="Asset hrefs under URL are files under the local folder PATH (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout.")
@_library_errors
def validate(
    output: Path | None,
    config: Path | None,
    public_urls: tuple[str, ...],
    source_urls: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check a published catalog in OUTPUT, offline: schemas, links, asset files, index.

    Walks OUTPUT/catalog.json and every child and item it links (plus any STAC file no link
    reaches, reported as an orphan), validates each against the packaged STAC schemas and
    the extensions it declares, checks that every link and asset href leads to an existing
    file, and that index.geojson lists exactly the items, unchanged. Absolute URLs are
    mapped to local files with --public-url and --source-url; others are listed as not
    checked (nothing is downloaded). Prints one line per problem naming the file and the
    field. Exit 0 when clean, 1 when problems were found, 2 for bad usage.
    """
    from stacsync.check.catalog import UrlMap, check_catalog, check_url

    try:
        for url in public_urls:
            check_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--public-url") from None
    try:
        maps = [UrlMap.parse(text) for text in source_urls]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--source-url") from None
    if config is not None:
        output, more_urls, more_maps = _validate_config(config, output)
        public_urls, maps = (*public_urls, *more_urls), [*maps, *more_maps]
    if output is None:
        raise click.UsageError("give OUTPUT, or --config naming it")
    for url_map in maps:
        if not url_map.folder.is_dir():
            raise click.BadParameter(f"{url_map.folder} is not a folder", param_hint="--source-url")
    progress = _Progress() if (not as_json and sys.stderr.isatty()) else None
    try:
        report = check_catalog(output, public_urls=public_urls, source_urls=maps, progress=progress)
    finally:
        if progress:
            progress.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        _print_check_report(report, output)
    if not report.ok:
        raise SystemExit(1)


def _print_check_report(report, output: Path) -> None:
    from stacsync.check.catalog import COUNTED

    for problem in report.problems:
        click.echo(str(problem))
    by_site: dict[str, list] = {}
    for skipped in report.unchecked:
        by_site.setdefault("/".join(skipped.href.split("/", 3)[:3]), []).append(skipped)
    for site, skipped in sorted(by_site.items()):
        click.echo(
            f"not checked (no network): {len(skipped)} hrefs under {site}, "
            f"first in {skipped[0].file}: {skipped[0].where}"
        )
    counts = ", ".join(f"{report.counts[key]} {key}" for key in COUNTED)
    verdict = f"{len(report.problems)} problems" if report.problems else "no problems"
    click.echo(f"{output}: {verdict}; checked {counts}")


def _validate_config(config: Path, output: Path | None):
    """OUTPUT, public URLs and URL→folder maps a config implies, for `validate --config`."""
    from stacsync.check.catalog import UrlMap
    from stacsync.config import load_settings

    settings = load_settings(config)
    if settings.output_irods is not None and output is None:
        raise click.UsageError(
            f"the catalog is in iRODS ({settings.output_irods}): give a local copy as OUTPUT"
        )
    urls = (settings.public_url,) if settings.public_url else ()
    # Rewrites from a local prefix to a URL say where asset URLs live on this machine.
    maps = [
        UrlMap(to, Path(prefix))
        for prefix, to in settings.href_rewrites
        if to.startswith(("http://", "https://")) and Path(prefix).is_dir()
    ]
    return output or settings.output_path, urls, maps


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="stacsync")


if __name__ == "__main__":
    main()
