"""Item titles: a collection's `item_title` template filled in for one item."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stacsync.config.templates import ITEM_TITLE, Template


def fill_item_title(
    template: str, item_id: str, when: str, collection: str, properties: Mapping[str, Any]
) -> str:
    """An item's title from its collection's `item_title` template (see stacsync.config.templates).

    Checked at config time; a template that never was (settings built in code) and cannot be
    parsed is used as written, like a description.
    """
    day = datetime.fromisoformat(when.replace("Z", "+00:00"))
    values = {"id": item_id, "date": day, "collection": collection, "properties": properties}
    try:
        template_ = Template.parse(template, ITEM_TITLE)
    except ValueError:
        template_ = Template.literal(template, ITEM_TITLE)
    return template_.fill(values)  # bounded; a blank property leaves no double space
