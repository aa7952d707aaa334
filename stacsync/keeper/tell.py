"""After a pass, tell the catalog's keeper: a child link in their parent catalog, and mail.

Both are best effort: a failure is one logged warning and is tried again after the next pass.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING

from stacsync.catalog.links import catalog_path, collection_path
from stacsync.keeper.mail import (
    MailNotifier,
    PublishedCollection,
    announced_state,
    collections_to_announce,
    new_error_list,
)
from stacsync.keeper.parent import ParentCatalogError, ParentStore, child_href, link_into_parent

if TYPE_CHECKING:
    from stacsync.config.settings import Settings
    from stacsync.core.summary import PassSummary
    from stacsync.manifest.db import Manifest

log = logging.getLogger(__name__)

CATALOG = catalog_path()


class Keeper:
    """Tells the keeper about one pass: call `before()` at its start and `after()` at its end."""

    def __init__(self, settings: Settings, db: Manifest, parent_store: ParentStore | None):
        self.settings = settings
        self.db = db
        self.parent_store = parent_store
        self.mailer = MailNotifier(settings.notify) if settings.notify else None
        self._errors_before: set[str] = set()

    def before(self) -> None:
        if self.mailer is not None:
            self._errors_before = {row["path"] for row in self.db.errors()}

    def after(self, summary: PassSummary) -> None:
        self._link_into_parent()
        if self.mailer is not None:
            self._announce_collections()
            if summary.new_errors:
                errors = new_error_list(self._errors_before, self.db.errors())
                if errors:
                    self.mailer.new_errors(errors, summary.errors, self._url(CATALOG))

    # -- parent catalog ------------------------------------------------------------------

    def _link_into_parent(self) -> None:
        parent = self.settings.parent_catalog
        if parent is None or self.parent_store is None:
            return
        if self.db.state.linked_parent == parent:
            return  # linked once; a keeper who removed the link meant it
        if self.db.written_hash(CATALOG) is None:
            return  # nothing published yet to link to
        href = child_href(parent, self._path(CATALOG), self._public(CATALOG))
        try:
            wrote = link_into_parent(self.parent_store, parent, href, self.settings.catalog_title)
        except ParentCatalogError as exc:
            log.warning("%s; trying again after the next pass", exc)
            return
        if wrote:
            log.info("added a child link to %s in the parent catalog %s", href, parent)
        with self.db.transaction():
            self.db.state.linked_parent = parent

    # -- mail ----------------------------------------------------------------------------

    def _announce_collections(self) -> None:
        assert self.mailer is not None
        published = self.db.published_collections()
        new = collections_to_announce(published, self.db.state.announced_collections)
        if not new:
            return
        titles = {c.id: c.title for c in self.settings.collections}
        notices = [
            PublishedCollection(cid, titles.get(cid), self._url(collection_path(cid)))
            for cid in new
        ]
        if self.mailer.collections_published(notices):  # unsent: told after the next pass
            with self.db.transaction():
                self.db.state.announced_collections = announced_state(published)

    # -- where our files are -------------------------------------------------------------

    def _path(self, relpath: str) -> str:
        root = self.settings.output_label
        return posixpath.join(root, relpath)

    def _public(self, relpath: str) -> str | None:
        url = self.settings.public_url
        return f"{url}/{relpath}" if url else None

    def _url(self, relpath: str) -> str:
        return self._public(relpath) or self._path(relpath)
