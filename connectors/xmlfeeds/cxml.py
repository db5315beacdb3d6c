"""cXML purchase orders (Jaggaer eProcurement): ``OrderRequest`` in, ``ConfirmationRequest`` out.

An ``OrderRequest`` document (cXML 1.2, ``cXML/Request/OrderRequest``) carries one purchase order::

    cXML@payloadID,timestamp
      Header/From|To|Sender/Credential/Identity      (To = the supplier)
      Request/OrderRequest
        OrderRequestHeader@orderID,orderDate,type     (type: new | update | delete)
          Total/Money@currency
          ShipTo/Address@addressID/Name, PostalAddress/PostalCode
        ItemOut@quantity,lineNumber,requestedDeliveryDate   (one or more)
          ItemID/SupplierPartID
          ItemDetail/UnitPrice/Money, Description, UnitOfMeasure

:func:`parse_order_request` checks all of it and returns one flat record with its lines, or raises
:class:`~connectors.xmlfeeds.safe.XmlRejected` naming every problem by element path
(``/cXML/Request/OrderRequest/ItemOut[2]/@quantity``) and reason. :func:`confirmation_request` writes the
``ConfirmationRequest`` that answers an order (``accept``, ``reject`` or ``detail``). Parsing goes through
defusedxml: the ``<!DOCTYPE cXML SYSTEM ...>`` line is accepted (never fetched), entity declarations are not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from connectors.xmlfeeds.safe import XmlIssue, XmlRejected, parse_xml, text_of

CXML_VERSION = "1.2.014"
ORDER_TYPES = ("new", "update", "delete")
CONFIRMATION_TYPES = ("accept", "reject", "detail", "except", "allDetail")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ORDER = "/cXML/Request/OrderRequest"


def _datetime_ok(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _money(element: Element | None, path: str, issues: list[XmlIssue], *, required: bool = True) -> tuple[str, str]:
    """(amount as text, currency) of a ``Money`` element, recording problems under ``path``."""
    if element is None:
        if required:
            issues.append(XmlIssue(path, "the element is missing"))
        return "", ""
    amount, currency = text_of(element), element.get("currency", "")
    if _decimal(amount) is None:
        issues.append(XmlIssue(path, "not a decimal amount", amount))
    if not _CURRENCY.match(currency):
        issues.append(XmlIssue(f"{path}/@currency", "not a three-letter ISO 4217 currency code", currency))
    return amount, currency


def _identity(root: Element, party: str) -> str:
    return text_of(root.find(f"Header/{party}/Credential/Identity"))


def parse_order_request(data: bytes, filename: str = "order.xml") -> dict[str, Any]:
    """One purchase order from a cXML ``OrderRequest`` (all-or-nothing; see the module docstring)."""
    root = parse_xml(data, filename)
    if root.tag != "cXML":
        raise XmlRejected(filename, [XmlIssue(f"/{root.tag}", "the root element must be <cXML>")])
    order = root.find("Request/OrderRequest")
    if order is None:
        request = root.find("Request")
        found = [child.tag for child in request] if request is not None else []
        why = f"there is no OrderRequest (the Request holds {', '.join(found)})" if found else "there is no OrderRequest"
        raise XmlRejected(filename, [XmlIssue(_ORDER, why)])
    issues: list[XmlIssue] = []
    header = order.find("OrderRequestHeader")
    if header is None:
        raise XmlRejected(filename, [XmlIssue(f"{_ORDER}/OrderRequestHeader", "the element is missing")])
    hpath = f"{_ORDER}/OrderRequestHeader"
    order_id = header.get("orderID", "").strip()
    if not order_id:
        issues.append(XmlIssue(f"{hpath}/@orderID", "a value is required"))
    order_date = header.get("orderDate", "").strip()
    if not order_date:
        issues.append(XmlIssue(f"{hpath}/@orderDate", "a value is required"))
    elif not _datetime_ok(order_date):
        issues.append(XmlIssue(f"{hpath}/@orderDate", "not an ISO 8601 date and time", order_date))
    order_type = header.get("type", "new")
    if order_type not in ORDER_TYPES:
        issues.append(XmlIssue(f"{hpath}/@type", f"must be one of {', '.join(ORDER_TYPES)}", order_type))
    total, currency = _money(header.find("Total/Money"), f"{hpath}/Total/Money", issues)
    ship = header.find("ShipTo/Address")
    supplier = _identity(root, "To")
    if not supplier:
        issues.append(XmlIssue("/cXML/Header/To/Credential/Identity", "the supplier's identity is required"))
    lines: list[dict[str, Any]] = []
    numbers: set[str] = set()
    items = order.findall("ItemOut")
    if not items:
        issues.append(XmlIssue(f"{_ORDER}/ItemOut", "an order needs at least one ItemOut line"))
    for n, item in enumerate(items, start=1):
        ipath = f"{_ORDER}/ItemOut[{n}]"
        quantity = item.get("quantity", "").strip()
        qty = _decimal(quantity)
        if not quantity:
            issues.append(XmlIssue(f"{ipath}/@quantity", "a value is required"))
        elif qty is None or qty <= 0:
            issues.append(XmlIssue(f"{ipath}/@quantity", "not a positive number", quantity))
        line_number = item.get("lineNumber", "").strip()
        if not line_number.isdigit():
            issues.append(XmlIssue(f"{ipath}/@lineNumber", "not a whole line number", line_number))
        elif line_number in numbers:
            issues.append(XmlIssue(f"{ipath}/@lineNumber", "used by an earlier line", line_number))
        numbers.add(line_number)
        part = text_of(item.find("ItemID/SupplierPartID"))
        if not part:
            issues.append(XmlIssue(f"{ipath}/ItemID/SupplierPartID", "a value is required"))
        detail = item.find("ItemDetail")
        if detail is None:
            issues.append(XmlIssue(f"{ipath}/ItemDetail", "the element is missing"))
            price, line_currency, description, unit = "", "", "", ""
        else:
            price, line_currency = _money(detail.find("UnitPrice/Money"), f"{ipath}/ItemDetail/UnitPrice/Money",
                                          issues)
            described = detail.find("Description")
            description = " ".join("".join(described.itertext()).split()) if described is not None else ""
            if not description:
                issues.append(XmlIssue(f"{ipath}/ItemDetail/Description", "a value is required"))
            unit = text_of(detail.find("UnitOfMeasure"))
        delivery = item.get("requestedDeliveryDate", "").strip()
        if delivery and not _datetime_ok(delivery):
            issues.append(XmlIssue(f"{ipath}/@requestedDeliveryDate", "not an ISO 8601 date", delivery))
        lines.append({"lineNumber": int(line_number) if line_number.isdigit() else None,
                      "quantity": float(qty) if qty is not None else None, "supplierPartID": part,
                      "description": description, "unitPrice": price, "currency": line_currency,
                      "unitOfMeasure": unit, "requestedDeliveryDate": delivery or None})
    if issues:
        raise XmlRejected(filename, issues)
    deliveries = sorted(d for d in (line["requestedDeliveryDate"] for line in lines) if d)
    return {
        "orderID": order_id,
        "orderDate": order_date,
        "orderType": order_type,
        "payloadID": root.get("payloadID", ""),
        "buyer": _identity(root, "From"),
        "supplier": supplier,
        "total": total,
        "currency": currency,
        "shipToAddressID": ship.get("addressID", "") if ship is not None else "",
        "shipToName": text_of(ship.find("Name")) if ship is not None else "",
        "shipToPostalCode": text_of(ship.find("PostalAddress/PostalCode")) if ship is not None else "",
        "requestedDeliveryDate": deliveries[0] if deliveries else None,
        "lines": lines,
    }


def _credential(parent: Element, tag: str, identity: str, domain: str = "NetworkID") -> None:
    cred = SubElement(SubElement(parent, tag), "Credential", {"domain": domain})
    SubElement(cred, "Identity").text = identity


def confirmation_request(confirmation: Mapping[str, Any], *, sender: str = "CareHub",
                         now: datetime | None = None) -> bytes:
    """A cXML ``ConfirmationRequest`` for one order.

    ``confirmation``: ``orderID``, ``orderDate``, ``type`` (accept | reject | detail | except | allDetail),
    optional ``confirmID``, ``payloadID`` of the order, ``buyer``, ``supplier``, ``comments``, ``total`` and
    ``currency``, and ``lines`` (``lineNumber``, ``quantity``, optional ``type``) for a line-level answer.
    The payload id is derived from the content, so writing the same confirmation twice gives the same bytes
    apart from the timestamp."""
    kind = str(confirmation.get("type") or "accept")
    if kind not in CONFIRMATION_TYPES:
        raise ValueError(f"confirmation type must be one of {', '.join(CONFIRMATION_TYPES)}, got {kind!r}")
    order_id = str(confirmation.get("orderID") or "").strip()
    if not order_id:
        raise ValueError("a confirmation needs the orderID it answers")
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in confirmation.items())).encode()).hexdigest()[:16]
    root = Element("cXML", {"payloadID": f"{digest}@carehub", "timestamp": stamp, "xml:lang": "en-GB"})
    head = SubElement(root, "Header")
    _credential(head, "From", str(confirmation.get("supplier") or sender))
    _credential(head, "To", str(confirmation.get("buyer") or "jaggaer"))
    _credential(head, "Sender", sender)
    sender_element = head.find("Sender")
    assert sender_element is not None
    SubElement(sender_element, "UserAgent").text = "CareHub"
    request = SubElement(root, "Request", {"deploymentMode": str(confirmation.get("deploymentMode") or "production")})
    conf = SubElement(request, "ConfirmationRequest")
    attrs = {"type": kind, "noticeDate": stamp, "operation": "new"}
    if confirmation.get("confirmID"):
        attrs["confirmID"] = str(confirmation["confirmID"])
    ch = SubElement(conf, "ConfirmationHeader", attrs)
    if confirmation.get("total") not in (None, ""):
        SubElement(SubElement(ch, "Total"), "Money", {"currency": str(confirmation.get("currency") or "GBP")}).text = \
            str(confirmation["total"])
    if confirmation.get("comments"):
        SubElement(ch, "Comments", {"xml:lang": "en-GB"}).text = str(confirmation["comments"])
    ref = SubElement(conf, "OrderReference", {"orderID": order_id, "orderDate": str(confirmation.get("orderDate") or "")})
    SubElement(ref, "DocumentReference", {"payloadID": str(confirmation.get("payloadID") or "")})
    lines: Sequence[Mapping[str, Any]] = confirmation.get("lines") or []
    for line in lines:
        item = SubElement(conf, "ConfirmationItem", {"quantity": str(line.get("quantity", "")),
                                                    "lineNumber": str(line.get("lineNumber", ""))})
        SubElement(item, "ConfirmationStatus", {"quantity": str(line.get("quantity", "")),
                                                "type": str(line.get("type") or kind)})
    body = tostring(root, encoding="unicode")
    doctype = f'<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/Fulfill.dtd">'
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n{body}\n'.encode()


def parse_confirmation(data: bytes, filename: str = "confirmation.xml") -> dict[str, Any]:
    """The order, type and lines of a ``ConfirmationRequest`` (for checks and round trips)."""
    root = parse_xml(data, filename)
    conf = root.find("Request/ConfirmationRequest")
    if root.tag != "cXML" or conf is None:
        raise XmlRejected(filename, [XmlIssue("/cXML/Request/ConfirmationRequest", "the element is missing")])
    header = conf.find("ConfirmationHeader")
    ref = conf.find("OrderReference")
    if header is None or ref is None:
        raise XmlRejected(filename, [XmlIssue("/cXML/Request/ConfirmationRequest",
                                              "ConfirmationHeader and OrderReference are required")])
    return {"orderID": ref.get("orderID", ""), "orderDate": ref.get("orderDate", ""), "type": header.get("type", ""),
            "noticeDate": header.get("noticeDate", ""), "payloadID": root.get("payloadID", ""),
            "lines": [{"lineNumber": i.get("lineNumber", ""), "quantity": i.get("quantity", ""),
                       "type": _status_type(i.find("ConfirmationStatus"))} for i in conf.findall("ConfirmationItem")]}


def _status_type(status: Element | None) -> str:
    return status.get("type", "") if status is not None else ""
