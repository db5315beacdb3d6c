"""EMIS-X Partner API (PAPI) reads: one GET per resident, the resident's EMIS patient number in the query.

PAPI has no list or change feed for a care home: every clinical call takes ``patientNumber`` (an int32) and
returns one EMIS Open ``MedicalRecord38`` document. This paginator walks the residents' patient numbers
from the connection's settings, one request (one page) each, and turns each document into records:

Options:
    param: the request parameter holding the patient numbers (comma or space separated), rendered from
        the connection's settings and removed from the request (``patient_numbers``).
    query_param: the query parameter that carries one patient number (``patientNumber``).
    items: JMESPath on the reply giving the records of the stream, e.g. ``allergyList`` or
        ``eventList[?problem]``; ``@`` (the default) keeps the whole document as one record.
    id_field: the record field that receives the patient number (``patientNumber``), because the list items
        of a ``MedicalRecord38`` document do not say whose record they come from.
    copy: ``{field: JMESPath on the reply}`` copied onto every record (``registration.nhsNumber`` where the
        call returns registration details).

A checkpoint holds the index of the next patient, so an interrupted read resumes at the next resident.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jmespath

from connectors.auth import OutgoingRequest
from connectors.errors import ConnectorError
from connectors.paginators import Paginator

_SPLIT = re.compile(r"[\s,;]+")


class PatientNumberPaginator(Paginator):
    """One request per patient number, records exploded from the ``MedicalRecord38`` reply."""

    type_name = "patient_numbers"

    def __init__(self, spec: Any, state: dict[str, Any] | None, base_url: str) -> None:
        super().__init__(spec, state, base_url)
        self._current: str | None = None

    def initial(self) -> dict[str, Any]:
        return {"index": 0}

    @property
    def _opts(self) -> dict[str, Any]:
        return dict(self.spec.options)

    def _numbers(self, request: OutgoingRequest) -> list[str]:
        raw = request.params.pop(str(self._opts.get("param", "patient_numbers")), "")
        return [part for part in _SPLIT.split(raw) if part]

    def prepare(self, request: OutgoingRequest) -> None:
        numbers = self._numbers(request)
        index = int(self.pos.get("index", 0))
        name = self._opts.get("param", "patient_numbers")
        if index >= len(numbers):
            raise ConnectorError(f"nothing to read: the connection's list `{name}` is empty or shorter than the "
                                 f"checkpoint ({index + 1} needed, {len(numbers)} given)")
        number = numbers[index]
        if not number.isdigit() or int(number) > 2**31 - 1:
            raise ConnectorError(f"`{number}` in `{name}` is not an EMIS patient number (a whole number, as EMIS "
                                 f"Web shows it)")
        self._current = number
        request.params[str(self._opts.get("query_param", "patientNumber"))] = number

    def enrich(self, records: list[Any]) -> list[Any]:
        out: list[Any] = []
        items_path = str(self._opts.get("items", "@"))
        copies = {str(k): str(v) for k, v in dict(self._opts.get("copy") or {}).items()}
        id_field = str(self._opts.get("id_field", "patientNumber"))
        for document in records:
            if not isinstance(document, dict):
                continue
            found = jmespath.search(items_path, document)
            items = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
            extra: dict[str, Any] = {k: jmespath.search(expr, document) for k, expr in copies.items()}
            extra[id_field] = self._current
            out.extend({**item, **extra} for item in items if isinstance(item, dict))
        return out

    def advance(self, request: OutgoingRequest, response: httpx.Response, body: Any, records: list[Any]) -> bool:
        numbers = self._numbers(request)
        index = int(self.pos.get("index", 0)) + 1
        if index >= len(numbers):
            return False
        self.pos = {"index": index}
        return True
