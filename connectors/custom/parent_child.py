"""Parent/child reads: list the parents once, then read each parent's children (TalentLMS courses per user).

Options:
    parent_ids: JMESPath giving the parent ids from the parent list body, e.g. ``[?status=='active'].id``.
    parent_copy: ``{child_field: parent_field}`` values copied from each parent onto its children.
    child_path: path of one parent's children, with ``{parent}`` where the id goes, e.g. ``/users/id:{parent}``.
    parent_field: the child field that receives the parent's id (``user_id``).

The stream's own path is the parent list. Its reply is a page with no records; each child request is one more
page. The parent list (ids and copied values) lives in the checkpoint, so a read resumes at the next parent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import jmespath

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator


class ParentChildPaginator(Paginator):
    """One request for the parents, then one per parent for its children."""

    type_name = "parent_child"

    def initial(self) -> dict[str, Any]:
        return {"parents": None, "index": 0}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def _current(self) -> dict[str, Any] | None:
        parents = self.pos.get("parents")
        index = int(self.pos.get("index", 0))
        if parents is None or index >= len(parents):
            return None
        current: dict[str, Any] = parents[index]
        return current

    def prepare(self, request: OutgoingRequest) -> None:
        parent = self._current()
        if parent is None:
            return  # the parent list itself
        path = str(self._opts["child_path"]).replace("{parent}", quote(str(parent["id"]), safe=""))
        request.url = self.base_url.rstrip("/") + path
        request.params = {}

    def enrich(self, records: list[Any]) -> list[Any]:
        parent = self._current()
        if parent is None:
            return []  # the parent list is not a page of children
        extra = {str(self._opts.get("parent_field", "parent_id")): parent["id"],
                 **{k: v for k, v in parent.items() if k != "id"}}
        return [{**r, **extra} if isinstance(r, dict) else r for r in records]

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        if self.pos.get("parents") is None:
            ids = jmespath.search(str(self._opts.get("parent_ids", "[*].id")), body) or []
            copy = dict(self._opts.get("parent_copy") or {})
            rows = body if isinstance(body, list) else []
            by_id = {str(row.get("id")): row for row in rows if isinstance(row, dict)}
            parents = [{"id": i, **{child: by_id.get(str(i), {}).get(field) for child, field in copy.items()}}
                       for i in ids]
            self.pos = {"parents": parents, "index": 0}
            return bool(parents)
        index = int(self.pos.get("index", 0)) + 1
        if index >= len(self.pos["parents"]):
            return False
        self.pos = {**self.pos, "index": index}
        return True
