"""Parsers that pull the vendor's own error message out of an error reply, one per ``errors.format``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

ParsedError = tuple[str, str | None]  # (message, code)


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _fallback(resp: httpx.Response) -> ParsedError:
    text = resp.text.strip()
    return (text[:500] if text else resp.reason_phrase or f"HTTP {resp.status_code}"), None


def parse_xero(resp: httpx.Response) -> ParsedError:
    """Xero: ``Elements[].ValidationErrors[].Message``, ``Message``, problem ``detail``/``Detail``."""
    body = _body(resp)
    if not isinstance(body, dict):
        return _fallback(resp)
    msgs: list[str] = []
    for el in body.get("Elements") or []:
        msgs += [str(v.get("Message")) for v in el.get("ValidationErrors") or [] if v.get("Message")]
    problem: dict[str, Any] = body["problem"] if isinstance(body.get("problem"), dict) else body
    for f in problem.get("invalidFields") or []:
        msgs.append(f"{f.get('name')}: {f.get('reason')}")
    if msgs:
        return "; ".join(msgs), str(body.get("Type") or problem.get("title") or "") or None
    for key in ("Message", "Detail", "detail", "title", "Title"):
        if problem.get(key):
            return str(problem[key]), str(body.get("Type") or problem.get("title") or "") or None
    return _fallback(resp)


def parse_quickbooks(resp: httpx.Response) -> ParsedError:
    """QuickBooks: ``Fault.Error[].Message`` + ``Detail`` and ``code``."""
    body = _body(resp)
    fault = body.get("Fault") if isinstance(body, dict) else None
    errors = (fault or {}).get("Error") or []
    if errors:
        first = errors[0]
        msg = str(first.get("Message", ""))
        if first.get("Detail"):
            msg = f"{msg}: {first['Detail']}" if msg else str(first["Detail"])
        return msg, str(first.get("code")) if first.get("code") is not None else None
    return _fallback(resp)


def parse_sage(resp: httpx.Response) -> ParsedError:
    """Sage Accounting: a list of ``{$severity, $dataCode, $message, $source}``."""
    body = _body(resp)
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    msgs = []
    code = None
    for it in items:
        if isinstance(it, dict) and it.get("$message"):
            src = f" ({it['$source']})" if it.get("$source") else ""
            msgs.append(f"{it['$message']}{src}")
            code = code or it.get("$dataCode")
    if msgs:
        return "; ".join(msgs), code
    return _fallback(resp)


def parse_hmrc(resp: httpx.Response) -> ParsedError:
    """HMRC: ``{code, message, errors?: [{code, message}]}``."""
    body = _body(resp)
    if isinstance(body, dict) and (body.get("message") or body.get("code")):
        msg = str(body.get("message") or body.get("code"))
        subs = [str(e.get("message")) for e in body.get("errors") or [] if isinstance(e, dict)]
        return (msg + (": " + "; ".join(subs) if subs else "")), body.get("code")
    return _fallback(resp)


def parse_fhir(resp: httpx.Response) -> ParsedError:
    """FHIR ``OperationOutcome``: ``issue[].diagnostics`` or ``details.text``."""
    body = _body(resp)
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue") or []
        msgs = [str(i.get("diagnostics") or (i.get("details") or {}).get("text")
                    or ((i.get("details") or {}).get("coding") or [{}])[0].get("display") or i.get("code"))
                for i in issues]
        code = None
        if issues:
            coding = ((issues[0].get("details") or {}).get("coding") or [{}])[0]
            code = coding.get("code") or issues[0].get("code")
        return "; ".join(msgs) or "OperationOutcome", code
    return _fallback(resp)


_ITEM_KEYS = ("message", "Message", "Exception", "Description", "errorMsg", "error")


def _item_messages(items: Any) -> list[str]:
    """Messages of a list of error objects (Cin7 ``[{ErrorCode, Exception}]``, Brightpearl ``errors[]``)."""
    out: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            text = next((str(item[k]) for k in _ITEM_KEYS if isinstance(item.get(k), str) and item[k]), None)
            if text:
                out.append(text)
    return out


def parse_generic(resp: httpx.Response) -> ParsedError:
    """Common shapes: ``message``/``error``/``detail`` keys, ``Description``/``errorMsg``/``Message`` (Unleashed,
    Webfleet, ASP.NET Web API), an ``errors`` list (Brightpearl) or a bare list of error objects (Cin7
    ``[{ErrorCode, Exception}]``)."""
    body = _body(resp)
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            val = body.get(key)
            if isinstance(val, str) and val:
                return val, body.get("code") if isinstance(body.get("code"), str) else None
            if isinstance(val, dict) and val.get("message"):
                return str(val["message"]), None
        for key in ("Description", "errorMsg", "Message"):  # Message: ASP.NET Web API bodies (Verizon Connect)
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key]), None
        issue = body.get("issue")  # one FHIR-like issue: EMIS Partner API ``ErrorResponse``
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if isinstance(text, str) and text:
                return text, issue.get("code") if isinstance(issue.get("code"), str) else None
        if isinstance(body.get("description"), str) and body["description"]:  # Paychex ``ErrorResource``
            return str(body["description"]), body.get("code") if isinstance(body.get("code"), str) else None
        listed = _item_messages(body.get("errors"))
        if listed:
            return "; ".join(listed), None
        return json.dumps(body)[:500], None
    listed = _item_messages(body)
    if listed:
        return "; ".join(listed), None
    return _fallback(resp)


def parse_bamboohr(resp: httpx.Response) -> ParsedError:
    """BambooHR: the reason is in the ``X-BambooHR-Error-Message`` header; bodies are usually empty."""
    header = resp.headers.get("X-BambooHR-Error-Message")
    if header:
        return header, str(resp.status_code)
    return parse_generic(resp)


def parse_obie(resp: httpx.Response) -> ParsedError:
    """UK Open Banking ``OBErrorResponse1``: ``Errors[].Message`` (and ``Path``), code ``Errors[0].ErrorCode``."""
    body = _body(resp)
    if isinstance(body, dict) and isinstance(body.get("Errors"), list) and body["Errors"]:
        errs = [e for e in body["Errors"] if isinstance(e, dict)]
        msgs = [str(e.get("Message") or e.get("ErrorCode")) + (f" ({e['Path']})" if e.get("Path") else "") for e in errs]
        code = errs[0].get("ErrorCode") if errs else None
        return "; ".join(msgs) or str(body.get("Message") or body.get("Code")), str(code) if code else None
    if isinstance(body, dict) and body.get("Message"):
        return str(body["Message"]), str(body.get("Code")) if body.get("Code") else None
    return _fallback(resp)


def parse_mesh(resp: httpx.Response) -> ParsedError:
    """NHS MESH: v2 ``detail[].msg`` with ``code``, or v1 ``errorDescription`` with ``errorCode``."""
    body = _body(resp)
    if isinstance(body, dict):
        details = [d for d in body.get("detail") or [] if isinstance(d, dict)]
        if details:
            return "; ".join(str(d.get("msg") or d.get("code")) for d in details), str(details[0].get("code") or "") or None
        if body.get("errorDescription"):
            return str(body["errorDescription"]), str(body.get("errorCode") or "") or None
    return _fallback(resp)


def parse_odata(resp: httpx.Response) -> ParsedError:
    """OData v2 (SAP SuccessFactors, ADP): ``{"error": {"code", "message": {"lang", "value"}}}``."""
    body = _body(resp)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        text = msg.get("value") if isinstance(msg, dict) else msg
        if text:
            return str(text), str(err["code"]) if err.get("code") is not None else None
    return parse_generic(resp)


ERROR_PARSERS: dict[str, Callable[[httpx.Response], ParsedError]] = {
    "xero": parse_xero,
    "quickbooks": parse_quickbooks,
    "sage": parse_sage,
    "hmrc": parse_hmrc,
    "fhir": parse_fhir,
    "generic": parse_generic,
    "bamboohr": parse_bamboohr,
    "obie": parse_obie,
    "mesh": parse_mesh,
    "odata": parse_odata,
}
