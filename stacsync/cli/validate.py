"""`stacsync validate`: check a published catalog offline and print one line per problem.

The checks themselves are in stacsync.check; this is the command and its report.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from stacsync.cli.common import (
    Progress,
    library_errors,
)


@click.command()
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
@library_errors
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
    from stacsync.check.catalog import check_catalog
    from stacsync.check.report import UrlMap
    from stacsync.config.kinds import check_url

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
    progress = Progress() if (not as_json and sys.stderr.isatty()) else None
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
    from stacsync.check.report import COUNTED

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
    from stacsync.check.report import UrlMap
    from stacsync.config.load import load_settings

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
