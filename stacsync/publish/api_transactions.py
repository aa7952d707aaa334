"""A STAC API with the Transactions extension (stac-fastapi) as a `StacApi`, over HTTP.

5xx answers and connection errors are retried (tenacity); a 4xx is one item's refusal.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stacsync.publish.stac_api import (
    ApiItem,
    ChangeResult,
    CollectionChange,
    StacApiUnavailable,
)

if TYPE_CHECKING:
    from stacsync.config.settings import StacApiSettings

log = logging.getLogger(__name__)

FIRST_WAIT_SECONDS = 0.5  # the first retry's wait; it doubles at each further attempt
MAX_WAIT_SECONDS = 8.0


class _Transient(Exception):
    """A connection error or a 5xx: worth another try."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the text when it is not JSON

    @property
    def message(self) -> str:
        """What the API said, for a person."""
        if isinstance(self.body, dict):
            for key in ("detail", "description", "message", "msg"):
                if self.body.get(key):
                    return f"{self.status}: {self.body[key]}"
        return f"{self.status}: {str(self.body)[:300]}"


class TransactionsApi:
    """The STAC API at `url`, written through its Transactions (and bulk) endpoints."""

    def __init__(self, settings: StacApiSettings):
        self.settings = settings
        self.url = str(settings.url).rstrip("/")
        self.label = self.url
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if settings.token_env:
            token = os.environ.get(settings.token_env)
            if not token:
                raise StacApiUnavailable(
                    f"stac_api.token_env: the environment variable {settings.token_env} is not set"
                )
            self.headers["Authorization"] = f"Bearer {token}"
        self.bulk = True  # until the API says it has no bulk endpoint
        self.requests = 0

    # -- HTTP ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Answer:
        """One request, retried on connection errors and 5xx; StacApiUnavailable after that."""
        from tenacity import retry, retry_if_exception_type, stop_after_attempt

        def wait(state) -> float:
            return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** (state.attempt_number - 1))

        attempt = retry(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(max(1, self.settings.retries)),
            wait=wait,
            reraise=True,
            before_sleep=lambda s: log.info("STAC API: %s; retrying", s.outcome.exception()),
        )(self._once)
        try:
            return attempt(method, path, body)
        except _Transient as exc:
            raise StacApiUnavailable(f"STAC API {self.url}: {exc}") from exc

    def _once(self, method: str, path: str, body: Any) -> Answer:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self.headers
        )
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                return Answer(response.status, _parse(response.read()))
        except urllib.error.HTTPError as exc:
            answer = Answer(exc.code, _parse(exc.read()))
            if exc.code >= 500:
                raise _Transient(f"{method} {path}: {answer.message}") from exc
            return answer
        except (OSError, urllib.error.URLError) as exc:
            raise _Transient(f"{method} {path}: {getattr(exc, 'reason', exc)}") from exc

    # -- the protocol --------------------------------------------------------------------

    def apply(self, change: CollectionChange) -> ChangeResult:
        before = self.requests
        cid = change.collection_id
        result = ChangeResult()
        if change.doc is not None:
            answer = self._put_or_post(f"/collections/{_q(cid)}", "/collections", change.doc)
            if answer.status >= 400:
                # Without its collection no item can go in: say why, try again next pass.
                raise StacApiUnavailable(f"collection {cid} refused: {answer.message}")
            result.collection_written = True
        size = self.settings.batch_size
        for start in range(0, len(change.upserts), size):
            self._upsert(cid, change.upserts[start : start + size], result)
        for iid in change.deletes:
            answer = self._call("DELETE", f"/collections/{_q(cid)}/items/{_q(iid)}")
            if answer.status < 400 or answer.status == 404:  # 404: already gone
                result.deleted.append(iid)
            else:
                result.refused[iid] = answer.message
        result.requests = self.requests - before
        return result

    def _upsert(self, cid: str, batch: list[ApiItem], result: ChangeResult) -> None:
        if self.bulk and len(batch) > 1:
            body = {"items": {i.item_id: i.doc for i in batch}, "method": "upsert"}
            answer = self._call("POST", f"/collections/{_q(cid)}/bulk_items", body)
            if answer.status in (404, 405):
                self.bulk = False  # no bulk endpoint here: one request per item from now on
            elif answer.status < 400:
                failed = _bulk_failures(answer.body)
                result.refused.update(failed)
                result.upserted.extend(i for i in batch if i.item_id not in failed)
                return
            # Any other 4xx refuses the whole batch for one item's sake: find which, one by one.
        for item in batch:
            path = f"/collections/{_q(cid)}/items/{_q(item.item_id)}"
            answer = self._put_or_post(path, f"/collections/{_q(cid)}/items", item.doc)
            if answer.status < 400:
                result.upserted.append(item)
            else:
                result.refused[item.item_id] = answer.message
                log.warning("STAC API refused item %s/%s: %s", cid, item.item_id, answer.message)

    def _put_or_post(self, put_path: str, post_path: str, doc: dict[str, Any]) -> Answer:
        """Update, or create when the API does not have it yet."""
        answer = self._call("PUT", put_path, doc)
        if answer.status == 404:
            answer = self._call("POST", post_path, doc)
            if answer.status == 409:  # created meanwhile by someone else: update it
                answer = self._call("PUT", put_path, doc)
        return answer

    def items(self, collection_id: str) -> Iterator[dict[str, Any]]:
        path: str | None = f"/collections/{_q(collection_id)}/items?limit=1000"
        while path is not None:
            answer = self._call("GET", path)
            if answer.status == 404:
                return
            if answer.status >= 400:
                raise StacApiUnavailable(f"cannot list {collection_id}: {answer.message}")
            yield from answer.body.get("features", [])
            path = _next_path(answer.body, self.url)

    def collection_ids(self) -> set[str]:
        answer = self._call("GET", "/collections?limit=10000")
        if answer.status >= 400:
            raise StacApiUnavailable(f"cannot list collections: {answer.message}")
        return {c["id"] for c in answer.body.get("collections", [])}

    def delete_collection(self, collection_id: str) -> None:
        answer = self._call("DELETE", f"/collections/{_q(collection_id)}")
        if answer.status >= 400 and answer.status != 404:
            raise StacApiUnavailable(f"cannot delete {collection_id}: {answer.message}")

    def close(self) -> None:
        pass


def _q(part: str) -> str:
    return quote(part, safe="")


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def _bulk_failures(body: Any) -> dict[str, str]:
    """Items a bulk request refused (stac-fastapi-pgstac ≥ 6 lists them), id → message."""
    if not isinstance(body, dict):
        return {}
    return {str(e.get("id")): str(e.get("msg", e)) for e in body.get("errors") or []}


def _next_path(body: dict[str, Any], root: str) -> str | None:
    for link in body.get("links", []):
        href = link.get("href", "")
        if (
            link.get("rel") == "next"
            and href.startswith(root)
            and link.get("method", "GET") == "GET"
        ):
            return href[len(root) :]
    return None
