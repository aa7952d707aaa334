"""The wiring: the source, the output and the parent-catalog store a config names.

Every one is built here and nowhere else: a local folder, an iRODS collection or an S3 prefix.
iRODS and S3 modules load only when a config asks for them (their clients cost start-up time).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, cast

from stacsync.config.settings import Settings
from stacsync.publish.base import Output
from stacsync.publish.local import LocalOutput
from stacsync.sources.include import is_included
from stacsync.sources.local import LocalSource

if TYPE_CHECKING:
    from stacsync.config.settings import S3Settings
    from stacsync.keeper.parent import ParentStore
    from stacsync.publish.irods import IrodsOutput
    from stacsync.sources import Source
    from stacsync.stores.s3 import S3Options


def make_source(settings: Settings) -> Source:
    """The source a pass over `settings` reads."""
    if settings.source_s3 is not None:
        from stacsync.sources.s3 import S3Source

        s3 = settings.source_s3
        return S3Source.from_url(s3.url, _s3_options(s3), functools.partial(is_included, settings))
    if settings.source_irods is None:
        return LocalSource.for_settings(settings)
    from stacsync.sources.irods import IrodsSource
    from stacsync.stores.irods import IrodsClient

    connect = functools.partial(IrodsClient.connect, anonymous=settings.irods.anonymous)
    return IrodsSource(
        connect,
        settings.source_irods,
        functools.partial(is_included, settings),
        compute_checksums=settings.irods.compute_checksums,
        skew_seconds=settings.irods.clock_skew_seconds,
        prune=(settings.output_irods,) if settings.output_irods else (),
    )


def make_output(settings: Settings) -> Output:
    """Where a pass over `settings` publishes: a folder, an iRODS collection or S3 prefix."""
    if settings.output_s3 is not None:
        from stacsync.publish.s3 import S3Output

        s3 = settings.output_s3
        return S3Output.from_url(s3.url, _s3_options(s3), public=s3.public)
    if settings.output_irods is None:
        return LocalOutput(settings.output_path)
    from stacsync.publish.irods import IrodsOutput
    from stacsync.stores.irods import IrodsClient

    return IrodsOutput(IrodsClient.connect(), settings.output_irods)


def make_parent_store(settings: Settings, output: Output) -> ParentStore | None:
    """Where `settings.parent_catalog` is read and written: beside the output, in its store
    (a local file for a local output; an iRODS object, through the output's session, for an
    iRODS output). None when the config names no parent catalog."""
    if settings.parent_catalog is None:
        return None
    if settings.output_irods is None:
        from stacsync.keeper.parent import LocalParentStore

        return LocalParentStore()
    from stacsync.keeper.parent_irods import IrodsParentStore

    return IrodsParentStore(cast("IrodsOutput", output).client)


def _s3_options(s3: S3Settings) -> S3Options:
    from stacsync.stores.s3 import S3Options

    return S3Options(endpoint_url=s3.endpoint_url, region=s3.region, anonymous=s3.anonymous)
