"""LinkedIn Rest.li batch reads: ``GET /simpleJobPostingTasks?ids=a&ids=b`` over a list of task URNs.

The ids come from a request parameter rendered from the connection's settings (comma or space separated);
each page asks for up to ``page_size`` of them as repeated ``ids`` parameters (``explode: true`` in
LinkedIn's OpenAPI). With no ids configured, one probe id is sent: Rest.li answers a BATCH_GET of an
unknown key with 200 and an ``errors`` entry, so a connection test checks the credentials and reads nothing.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import httpx

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator

_SPLIT = re.compile(r"[\s,;]+")
PROBE_ID = "urn:li:simpleJobPostingTask:carehub-connection-check"


class RestliBatchIdsPaginator(Paginator):
    """Pages over configured ids, ``page_size`` per request, as repeated query parameters.

    Options:
        param: the request parameter holding the ids (removed from the request).
        query: the query parameter name LinkedIn expects (``ids``).
    """

    type_name = "restli_batch_ids"

    def initial(self) -> dict[str, Any]:
        return {"index": 0}

    def _ids(self, request: OutgoingRequest) -> list[str]:
        raw = request.params.pop(str(self.spec.options.get("param", "ids")), "")
        return [part for part in _SPLIT.split(raw) if part]

    def prepare(self, request: OutgoingRequest) -> None:
        ids = self._ids(request) or [PROBE_ID]
        index = int(self.pos.get("index", 0))
        chunk = ids[index:index + int(self.spec.page_size)] or [PROBE_ID]
        query = urlencode([(str(self.spec.options.get("query", "ids")), i) for i in chunk])
        request.url = f"{request.url.split('?', 1)[0]}?{query}"

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        ids = self._ids(request)
        index = int(self.pos.get("index", 0)) + int(self.spec.page_size)
        if index >= len(ids):
            return False
        self.pos = {"index": index}
        return True
