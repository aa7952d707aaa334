"""How a pass's summary reads for a person, as `rescan` and `manifest summary` print it.

No click here: a no-change rescan prints it before loading the command line (`cli.fast`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the fast path)
if TYPE_CHECKING:
    from typing import Any


def human_summary(s: dict[str, Any]) -> str:
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
