"""Paginators: one class per manifest ``paginator.type``, registered in :data:`PAGINATORS`.

The contract is three methods: ``prepare(request)`` puts the current position on the request,
``advance(request, response, body, records) -> bool`` moves to the next page (False when done), and
``state()`` returns the position of the *next* request, which goes into the checkpoint so a read can
resume exactly there.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urljoin

import httpx
import jmespath

from connectors.auth import OutgoingRequest


class Paginator:
    """Base class; subclasses keep their position in ``self.pos`` (JSON-serialisable)."""

    type_name: ClassVar[str] = ""

    def __init__(self, spec: Any, state: dict[str, Any] | None, base_url: str) -> None:
        self.spec = spec
        self.base_url = base_url
        self.pos: dict[str, Any] = dict(state or self.initial())
        self.where = ""  # set by the QuickBooks incremental strategy
        self.since: str | None = None  # set for ``incremental: {type: paginator}`` (the paginator applies it)

    def initial(self) -> dict[str, Any]:
        """Position of the first page."""
        return {}

    def prepare(self, request: OutgoingRequest) -> None:
        """Put the current position on the request."""

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        """Move to the next page; return False when there is none."""
        return False

    def state(self) -> dict[str, Any]:
        """Position of the next request (for checkpoints)."""
        return dict(self.pos)

    def enrich(self, records: list[Any]) -> list[Any]:
        """The page's records, before keys are read (a parent/child paginator adds the parent's id)."""
        return records

    def _follow(self, request: OutgoingRequest, url: str) -> None:
        prefix = str(getattr(self.spec, "relative_to", "")).strip("/")
        root = self.base_url.rstrip("/") + "/" + (prefix + "/" if prefix else "")
        absolute = url if "://" in url else urljoin(root, url.lstrip("/"))
        self.pos = {"next_url": absolute}

    def _apply_next_url(self, request: OutgoingRequest) -> bool:
        url = self.pos.get("next_url")
        if not url:
            return False
        request.url = str(url)
        request.params = {}
        return True


class SinglePage(Paginator):
    """One request."""

    type_name = "single_page"


class PageNumber(Paginator):
    """``page=n``; stops on a short or empty page, or at ``total_pages``."""

    type_name = "page_number"

    def initial(self) -> dict[str, Any]:
        return {"page": self.spec.start}

    def prepare(self, request: OutgoingRequest) -> None:
        request.params[self.spec.page_param] = str(self.pos["page"])
        if self.spec.page_size_param:
            request.params[self.spec.page_size_param] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        page = int(self.pos["page"])
        if self.spec.total_pages:
            total = jmespath.search(self.spec.total_pages, body)
            if total is not None and page >= int(total):
                return False
        if len(records) < self.spec.page_size:
            return False
        self.pos = {"page": page + 1}
        return True


class OffsetLimit(Paginator):
    """``offset``/``limit``."""

    type_name = "offset_limit"

    def initial(self) -> dict[str, Any]:
        return {"offset": 0}

    def prepare(self, request: OutgoingRequest) -> None:
        request.params[self.spec.offset_param] = str(self.pos["offset"])
        request.params[self.spec.limit_param] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        offset = int(self.pos["offset"]) + len(records)
        if self.spec.total:
            total = jmespath.search(self.spec.total, body)
            if total is not None and offset >= int(total):
                return False
        if len(records) < self.spec.page_size:
            return False
        self.pos = {"offset": offset}
        return True


class Cursor(Paginator):
    """A cursor taken from the body and sent back as a parameter."""

    type_name = "cursor"

    def prepare(self, request: OutgoingRequest) -> None:
        if self.pos.get("cursor"):
            request.params[self.spec.cursor_param] = str(self.pos["cursor"])
        if self.spec.limit_param:
            request.params[self.spec.limit_param] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        cursor = jmespath.search(self.spec.cursor_path, body)
        if not cursor:
            return False
        self.pos = {"cursor": cursor}
        return True


class LinkHeader(Paginator):
    """``Link: <url>; rel="next"``."""

    type_name = "link_header"

    def prepare(self, request: OutgoingRequest) -> None:
        if not self._apply_next_url(request) and self.spec.page_size_param:
            request.params[self.spec.page_size_param] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        link = response.links.get(self.spec.rel)
        if not link or not link.get("url"):
            return False
        self._follow(request, link["url"])
        return True


class NextUrl(Paginator):
    """A next-page URL in the body (Sage ``$next``)."""

    type_name = "next_url"

    def prepare(self, request: OutgoingRequest) -> None:
        if not self._apply_next_url(request) and self.spec.page_size_param:
            request.params[self.spec.page_size_param] = str(self.spec.page_size)

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        nxt = jmespath.search(self.spec.next_path, body)
        if not nxt or not records:
            return False
        self._follow(request, str(nxt))
        return True


class OData(Paginator):
    """``$top``/``$skip``, following a server-driven next link when the server gives one."""

    type_name = "odata"

    def initial(self) -> dict[str, Any]:
        return {"skip": 0}

    def prepare(self, request: OutgoingRequest) -> None:
        if self._apply_next_url(request):
            return
        request.params["$top"] = str(self.spec.page_size)
        request.params["$skip"] = str(self.pos.get("skip", 0))

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        for path in self.spec.next_link_paths:
            link = jmespath.search(path, body)
            if link:
                self._follow(request, str(link))
                return True
        if "next_url" in self.pos or len(records) < self.spec.page_size:
            return False
        self.pos = {"skip": int(self.pos.get("skip", 0)) + len(records)}
        return True


class QuickBooksQuery(Paginator):
    """``SELECT * FROM X [WHERE ...] ORDERBY MetaData.LastUpdatedTime STARTPOSITION n MAXRESULTS m``."""

    type_name = "quickbooks_query"

    def initial(self) -> dict[str, Any]:
        return {"position": 1}

    def prepare(self, request: OutgoingRequest) -> None:
        # QuickBooks query language, not SQL; every value comes from the manifest or our own cursor.
        query = "SELECT * FROM " + self.spec.entity + self.where + " ORDERBY MetaData.LastUpdatedTime"  # noqa: S608
        request.params["query"] = f"{query} STARTPOSITION {self.pos['position']} MAXRESULTS {self.spec.page_size}"

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        if len(records) < self.spec.page_size:
            return False
        self.pos = {"position": int(self.pos["position"]) + len(records)}
        return True


PAGINATORS: dict[str, type[Paginator]] = {
    cls.type_name: cls
    for cls in (SinglePage, PageNumber, OffsetLimit, Cursor, LinkHeader, NextUrl, OData, QuickBooksQuery)
}


def register_paginator(name: str, cls: type[Paginator]) -> None:
    """Register a Python paginator (the manifest vocabulary itself stays closed)."""
    if not issubclass(cls, Paginator):
        raise TypeError(f"{cls!r} is not a Paginator")
    PAGINATORS[name] = cls


def create_paginator(spec: Any, state: dict[str, Any] | None, base_url: str) -> Paginator:
    """Build the paginator a stream declares, resuming from ``state`` when given."""
    if spec.type == "custom":
        cls = PAGINATORS.get(spec.name)
        if cls is None:
            raise KeyError(f"custom paginator `{spec.name}` is not registered; known: {sorted(PAGINATORS)}")
        return cls(spec, state, base_url)
    return PAGINATORS[spec.type](spec, state, base_url)
