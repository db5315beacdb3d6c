"""Parent/child reads: list the parents, then read each parent's children (TalentLMS courses per learner,
Moodle completion per enrolled user and course).

Options:
    parent_ids: JMESPath giving the parent ids from a parent list body, e.g. ``[*].id``.
    parent_copy: ``{child_field: JMESPath on the parent}`` copied onto each child; ``{fan}`` in an expression is
        replaced by the current fan value, e.g. ``enrolledcourses[?id==`{fan}`].fullname | [0]``.
    child_path: path of one parent's children with ``{parent}`` (and ``{fan}``); the stream's URL if left out.
    child_params: query parameters of a child request (``{parent}``/``{fan}`` filled in); they override the
        stream's parameters.
    parent_params: extra query parameters of a parent list request (``{fan}`` filled in).
    parent_field: the child field that receives the parent's id (``user_id``).
    fan_param: a request parameter holding a comma-separated list (rendered from the connection's settings,
        removed from the request): the parent list is read once per value, and each child request carries it.
    child_cursor_path / child_cursor_param: cursor paging inside one parent's children (Lattice: JMESPath
        ``hasMore && endingCursor || null`` sent back as ``startingAfter``); ``child_limit_param`` carries
        ``page_size``.
    fan_field: the child field that receives the fan value (``courseid``; whole numbers stay numbers).

The stream's own path lists the parents; those replies are pages with no records, and each child request is
one more page. The parent list lives in the checkpoint, so a read resumes at the next child.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
import jmespath

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator

_SPLIT = re.compile(r"[\s,;]+")


def _fill(text: str, parent: Any, fan: Any) -> str:
    return text.replace("{parent}", "" if parent is None else str(parent)).replace("{fan}", "" if fan is None
                                                                                    else str(fan))


class ParentChildPaginator(Paginator):
    """Parent list request(s), then one request per (parent, fan value)."""

    type_name = "parent_child"

    def initial(self) -> dict[str, Any]:
        return {"fan_index": 0, "parents": None, "index": 0}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def _fans(self, request: OutgoingRequest) -> list[str | int | None]:
        name = self._opts.get("fan_param")
        if not name:
            return [None]
        values: list[str | int | None] = [int(v) if v.isdigit() else v
                                          for v in _SPLIT.split(request.params.pop(str(name), "")) if v]
        return values or [None]

    def _collected(self) -> list[dict[str, Any]]:
        return list(self.pos.get("collected") or [])

    def _child(self) -> dict[str, Any] | None:
        parents = self.pos.get("parents")
        index = int(self.pos.get("index", 0))
        if parents is None or index >= len(parents):
            return None
        child: dict[str, Any] = parents[index]
        return child

    def prepare(self, request: OutgoingRequest) -> None:
        fans = self._fans(request)
        opts = self._opts
        child = self._child()
        if child is None:  # a parent list request
            fan = fans[min(int(self.pos.get("fan_index", 0)), len(fans) - 1)]
            for k, v in dict(opts.get("parent_params") or {}).items():
                request.params[str(k)] = _fill(str(v), None, fan)
            return
        if opts.get("child_path"):
            path = _fill(str(opts["child_path"]), quote(str(child["id"]), safe=""), child.get("fan"))
            request.url = self.base_url.rstrip("/") + path
            request.params = {k: v for k, v in request.params.items() if k in (opts.get("child_params") or {})}
        for k, v in dict(opts.get("child_params") or {}).items():
            request.params[str(k)] = _fill(str(v), child["id"], child.get("fan"))
        if opts.get("child_limit_param"):
            request.params[str(opts["child_limit_param"])] = str(self.spec.page_size)
        if self.pos.get("cursor") and opts.get("child_cursor_param"):
            request.params[str(opts["child_cursor_param"])] = str(self.pos["cursor"])

    def enrich(self, records: list[Any]) -> list[Any]:
        child = self._child()
        if child is None:
            return []  # a parent list is not a page of children
        opts = self._opts
        extra = {str(opts.get("parent_field", "parent_id")): child["id"], **child.get("copy", {})}
        if opts.get("fan_field"):
            extra[str(opts["fan_field"])] = child.get("fan")
        return [{**r, **extra} for r in records if isinstance(r, dict)]

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        fans = self._fans(request)
        opts = self._opts
        if self.pos.get("parents") is None:
            fan_index = int(self.pos.get("fan_index", 0))
            fan = fans[min(fan_index, len(fans) - 1)]
            ids = jmespath.search(str(opts.get("parent_ids", "[*].id")), body) or []
            rows = jmespath.search(str(opts.get("parent_rows", "@")), body)
            by_id = {str(r.get("id")): r for r in rows if isinstance(r, dict)} if isinstance(rows, list) else {}
            copies = dict(opts.get("parent_copy") or {})
            collected = self._collected() + [
                {"id": i, "fan": fan, "copy": {k: jmespath.search(_fill(str(e), i, fan), by_id.get(str(i), {}))
                                               for k, e in copies.items()}}
                for i in ids]
            if fan_index + 1 < len(fans):
                self.pos = {"fan_index": fan_index + 1, "parents": None, "index": 0, "collected": collected}
                return True
            self.pos = {"fan_index": fan_index, "parents": collected, "index": 0}
            return bool(collected)
        cursor = jmespath.search(str(opts["child_cursor_path"]), body) if opts.get("child_cursor_path") else None
        if cursor:
            self.pos = {**self.pos, "cursor": cursor}
            return True
        index = int(self.pos.get("index", 0)) + 1
        if index >= len(self.pos["parents"]):
            return False
        self.pos = {**{k: v for k, v in self.pos.items() if k != "cursor"}, "index": index}
        return True
