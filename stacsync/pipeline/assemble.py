"""The wiring: the source, the output and the parent-catalog store a config names.

Every one is built here and nowhere else: a local folder or an iRODS collection for each.
iRODS modules load only when a config asks for them (python-irodsclient costs start-up time).
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
    from stacsync.keeper.parent import ParentStore
    from stacsync.publish.irods import IrodsOutput
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
