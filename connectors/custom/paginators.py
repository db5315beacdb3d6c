"""Custom paginators: offset paging and ``since`` inside a JSON body, and one request per listed id."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from connectors.auth import OutgoingRequest
from connectors.errors import ConnectorError
from connectors.paginators import Paginator


def _fill(template: Any, since: str) -> Any:
    if isinstance(template, str):
        return template.replace("{since}", since)
    if isinstance(template, dict):
        return {k: _fill(v, since) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, since) for v in template]
    return template


class JsonBodyPaginator(Paginator):
    """Paging and the incremental cursor live in the JSON body of a POST read.

    Options:
        start_field / max_field: body keys of an offset window (Deputy QUERY ``start``/``max``); leave
            them out for a single-request report (BambooHR ``reports/custom``).
        since_path: keys under which the ``since`` filter goes, e.g. ``[search, f_modified]``.
        since_value: the filter, with ``{since}`` where the cursor goes, e.g.
            ``{field: Modified, type: gt, data: "{since}"}``.
    """

    type_name = "json_body"

    def initial(self) -> dict[str, Any]:
        return {"start": 0}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def prepare(self, request: OutgoingRequest) -> None:
        body: dict[str, Any] = dict(request.json_body) if isinstance(request.json_body, dict) else {}
        opts = self._opts
        if opts.get("start_field"):
            body[str(opts["start_field"])] = int(self.pos.get("start", 0))
        if opts.get("max_field"):
            body[str(opts["max_field"])] = int(self.spec.page_size)
        if self.since and opts.get("since_path"):
            node = body
            keys = [str(k) for k in opts["since_path"]]
            for key in keys[:-1]:
                child = node.get(key)
                node[key] = dict(child) if isinstance(child, dict) else {}
                node = node[key]
            node[keys[-1]] = _fill(opts.get("since_value", "{since}"), self.since)
        request.json_body = body

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        if not self._opts.get("start_field") or len(records) < self.spec.page_size:
            return False
        self.pos = {"start": int(self.pos.get("start", 0)) + len(records)}
        return True


_SPLIT = re.compile(r"[\s,;]+")


class IdListPaginator(Paginator):
    """One GET per id; the ids come from a request parameter rendered from the connection's settings.

    Options:
        param: the parameter holding the ids (comma or space separated); it is removed from the request.
        suffix: appended to the stream path per id, ``/{id}`` by default.

    A "page" is one resource, so a checkpoint resumes at the next id.
    """

    type_name = "id_list"

    def initial(self) -> dict[str, Any]:
        return {"index": 0}

    def _ids(self, request: OutgoingRequest) -> list[str]:
        raw = request.params.pop(str(self.spec.options.get("param", "ids")), "")
        return [part for part in _SPLIT.split(raw) if part]

    def prepare(self, request: OutgoingRequest) -> None:
        ids = self._ids(request)
        index = int(self.pos.get("index", 0))
        if index >= len(ids):
            name = self.spec.options.get("param", "ids")
            raise ConnectorError(f"nothing to read: the connection's list `{name}` is empty or shorter than the "
                                 f"checkpoint ({index + 1} needed, {len(ids)} given)")
        suffix = str(self.spec.options.get("suffix", "/{id}"))
        request.url = request.url.rstrip("/") + suffix.replace("{id}", quote(ids[index], safe=""))

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        ids = self._ids(request)
        index = int(self.pos.get("index", 0)) + 1
        if index >= len(ids):
            return False
        self.pos = {"index": index}
        return True
