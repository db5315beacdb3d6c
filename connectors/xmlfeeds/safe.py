"""Parse untrusted XML safely: defusedxml refuses entity declarations and external references.

A ``<!DOCTYPE cXML SYSTEM "...cXML.dtd">`` line (every real cXML document has one) is allowed: the DTD
is never fetched. Any ``<!ENTITY`` (internal, as in a billion-laughs bomb, or external ``SYSTEM``/``PUBLIC``)
is refused, and so is a document over :data:`MAX_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring

from connectors.errors import ConnectorError

MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class XmlIssue:
    """One problem in an XML document: where (an element path such as ``/cXML/Request/OrderRequest/ItemOut[2]
    /@quantity``) and why, with the offending value."""

    path: str
    reason: str
    value: str = ""

    def __str__(self) -> str:
        shown = f" (found {self.value!r})" if self.value else ""
        return f"{self.path}: {self.reason}{shown}"


class XmlRejected(ConnectorError):
    """The document is unsafe or breaks its format; nothing from it was imported. ``issues`` lists every problem."""

    def __init__(self, filename: str, issues: list[XmlIssue]) -> None:
        self.filename = filename
        self.issues = issues
        head = "; ".join(str(i) for i in issues[:5])
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"{filename} was not imported: {len(issues)} problem(s): {head}{more}")


def parse_xml(data: bytes, filename: str = "document") -> Element:
    """The root element of ``data``; :class:`XmlRejected` for unsafe, oversized or malformed XML."""
    if len(data) > MAX_BYTES:
        raise XmlRejected(filename, [XmlIssue("/", f"the document is larger than {MAX_BYTES // (1024 * 1024)} MB")])
    try:
        root: Element = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            reason = (f"external entity {exc.name!r} ({exc.sysid or exc.pubid}) refused: the document tried to "
                      "read content from outside itself (a local file or URL)")
        else:
            reason = (f"entity declarations are refused (entity {exc.name!r}): declared entities can expand "
                      "without bound (billion laughs)")
        raise XmlRejected(filename, [XmlIssue("/", reason)]) from None
    except ExternalReferenceForbidden as exc:
        raise XmlRejected(filename, [XmlIssue(
            "/", f"external references are refused ({exc.sysid or exc.pubid!s}): the document tried to load "
                 "content from outside itself")]) from None
    except DTDForbidden:  # not raised with forbid_dtd=False; kept so the reason is clear if the policy changes
        raise XmlRejected(filename, [XmlIssue("/", "document type declarations are refused")]) from None
    except DefusedXmlException as exc:
        raise XmlRejected(filename, [XmlIssue("/", f"unsafe XML refused: {exc}")]) from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise XmlRejected(filename, [XmlIssue("/", f"not well-formed XML at line {line}, column {column + 1}: "
                                                   f"{_expat_reason(str(exc))}")]) from None
    return root


def _expat_reason(message: str) -> str:
    return message.split(":", 1)[0].strip() or message


def text_of(element: Element | None) -> str:
    """The element's text with surrounding white space removed ('' when absent)."""
    if element is None or element.text is None:
        return ""
    return element.text.strip()
