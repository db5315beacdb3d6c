"""Paginators of the operations connectors that the closed manifest vocabulary cannot express.

* ``next_link_since``: follow a server-driven next link (Microsoft Graph ``@odata.nextLink``) and put the
  incremental cursor into a filter parameter of the *first* request only (Graph delta
  ``$filter=lastModifiedDateTime gt <since>``); later pages carry the filter inside the link.
* ``first_result``: a 1-based ``firstResult``/``pageSize`` window with a date-range filter (Brightpearl search).
* ``path_page``: the page number is the last segment of the path (Unleashed ``/Products/2``), with the page
  size and the page count in the body (``Pagination.NumberOfPages``).
"""

from __future__ import annotations

from typing import Any

import httpx
import jmespath

from connectors.auth import OutgoingRequest
from connectors.paginators import Paginator, register_paginator


class NextLinkSincePaginator(Paginator):
    """Follow ``next_path`` links; the first request carries the page size and the ``since`` filter.

    Options:
        next_path: JMESPath of the next link in the body (default ``"@odata.nextLink"``).
        page_size_param: query parameter of the page size on the first request (``$top``).
        since_param / since_value: the filter parameter and its value with ``{since}`` where the cursor goes.
    """

    type_name = "next_link_since"

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def prepare(self, request: OutgoingRequest) -> None:
        if self._apply_next_url(request):
            return
        opts = self._opts
        if opts.get("page_size_param"):
            request.params[str(opts["page_size_param"])] = str(self.spec.page_size)
        if self.since and opts.get("since_param"):
            value = str(opts.get("since_value", "{since}")).replace("{since}", self.since)
            request.params[str(opts["since_param"])] = value

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        link = jmespath.search(str(self._opts.get("next_path", '"@odata.nextLink"')), body)
        if not link or str(link) == self.pos.get("next_url"):
            return False
        self._follow(request, str(link))
        return True


class PathPagePaginator(Paginator):
    """Page number as the last path segment (``/Products/{page}``), stopping at the body's page count.

    Options:
        page_size_param: query parameter of the page size (``pageSize``).
        total_pages: JMESPath of the number of pages in the body (``Pagination.NumberOfPages``).
    """

    type_name = "path_page"

    def initial(self) -> dict[str, Any]:
        return {"page": 1}

    def prepare(self, request: OutgoingRequest) -> None:
        request.url = f"{request.url.rstrip('/')}/{int(self.pos['page'])}"
        size_param = self.spec.options.get("page_size_param")
        if size_param:
            request.params[str(size_param)] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        page = int(self.pos["page"])
        total_path = self.spec.options.get("total_pages")
        if total_path:
            total = jmespath.search(str(total_path), body)
            if total is not None and page >= int(total):
                return False
        if len(records) < self.spec.page_size:
            return False
        self.pos = {"page": page + 1}
        return True


class FirstResultPaginator(Paginator):
    """A 1-based ``firstResult`` with ``pageSize`` (Brightpearl search); stops when the body says no more.

    Options:
        first_param / size_param: query parameters (``firstResult``, ``pageSize``).
        more_path: JMESPath of a "more pages" flag (``response.metaData.morePagesAvailable``).
        since_param / since_value: the incremental filter, ``{since}`` replaced (``updatedOn`` = ``{since}/``,
            Brightpearl's open-ended date range).
    """

    type_name = "first_result"

    def initial(self) -> dict[str, Any]:
        return {"first": 1}

    def prepare(self, request: OutgoingRequest) -> None:
        opts = dict(self.spec.options)
        request.params[str(opts.get("first_param", "firstResult"))] = str(int(self.pos["first"]))
        request.params[str(opts.get("size_param", "pageSize"))] = str(self.spec.page_size)
        if self.since and opts.get("since_param"):
            request.params[str(opts["since_param"])] = str(opts.get("since_value", "{since}")).replace(
                "{since}", self.since)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        more_path = self.spec.options.get("more_path")
        if more_path is not None and jmespath.search(str(more_path), body) is False:
            return False
        if not records or len(records) < self.spec.page_size:
            return False
        self.pos = {"first": int(self.pos["first"]) + len(records)}
        return True


# Registered here (importing ``connectors.custom`` imports this module), so new ones need no shared edit.
register_paginator("first_result", FirstResultPaginator)
