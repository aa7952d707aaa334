"""Pick the source and the output a config names: a local folder or an iRODS collection.

iRODS modules load only when a config asks for them (python-irodsclient costs start-up time).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from stacsync.config import Settings, is_included
from stacsync.publish.local import LocalOutput, Output
from stacsync.sources.local import LocalSource

if TYPE_CHECKING:
    from stacsync.keeper.parent import ParentStore
    from stacsync.sources import Source


def make_source(settings: Settings) -> Source:
    """The source a pass over `settings` reads."""
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
    """Where a pass over `settings` publishes: a `LocalOutput` or an `IrodsOutput`."""
    if settings.output_irods is None:
        return LocalOutput(settings.output_path)
    from stacsync.publish.irods import IrodsOutput
    from stacsync.stores.irods import IrodsClient

    return IrodsOutput(IrodsClient.connect(), settings.output_irods)


def make_parent_store(settings: Settings, output: Output) -> ParentStore | None:
    """Where `output.parent_catalog` is read and written: beside the output's own store."""
    if settings.parent_catalog is None:
        return None
    if settings.output_irods is None:
        from stacsync.keeper.parent import LocalParentStore

        return LocalParentStore()
    from stacsync.publish.irods import IrodsParentStore

    return IrodsParentStore(output)
