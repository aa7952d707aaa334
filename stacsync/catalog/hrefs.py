"""The public href of a source file: `href_rewrite` prefixes, iRODS web addresses, local paths."""

from __future__ import annotations

from stacsync.config.settings import Settings
from stacsync.core.names import file_uri, needs_uri, url_quote


def alternate_hrefs(settings: Settings, address: str, href: str) -> dict[str, str]:
    """Other addresses of an asset whose href is `href` (alternate-assets: name → href).

    An object of an S3 source published on a public URL keeps its `s3://` address as the
    alternate "s3", for tools that speak S3.
    """
    if address.startswith("s3://") and href != _s3_href(address):
        return {"s3": _s3_href(address)}
    return {}


def rewrite_href(settings: Settings, absolute_path: str) -> str:
    """The public href of a source file: first `href_rewrite` prefix on a component boundary.

    With an iRODS source a path under no prefix is published under `irods.dav_url`; an S3
    object under no prefix keeps its `s3://bucket/key` address (%-escaped).
    """
    for prefix, target in settings.href_rewrites:
        if prefix == "/":
            rest = absolute_path
        elif absolute_path == prefix or absolute_path.startswith(prefix + "/"):
            rest = absolute_path[len(prefix) :]
        else:
            continue
        if target.startswith("/"):
            return _local_href((target.rstrip("/") + rest) or "/")
        return target + url_quote(rest)
    if settings.source_irods is not None:
        return settings.irods.public_href(absolute_path)
    if absolute_path.startswith("s3://"):
        return _s3_href(absolute_path)
    return _local_href(absolute_path)


def _s3_href(address: str) -> str:
    bucket, _, key = address.removeprefix("s3://").partition("/")
    return f"s3://{bucket}/{url_quote(key)}"


def _local_href(path: str) -> str:
    # Written as it is where it can be, as readers expect; a name with bytes that are not
    # UTF-8 or with control characters cannot be, so it becomes a %-escaped file: URI.
    return file_uri(path) if needs_uri(path) else path
