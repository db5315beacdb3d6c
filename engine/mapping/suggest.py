"""Suggest field mappings from source field names and sample values."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from engine import identifiers as ids
from engine.caretypes import CareType, FieldType, get_care_type
from engine.mapping.models import TransformStep

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "givenName": ("firstname", "forename", "given", "first", "givenname", "fname"),
    "familyName": ("lastname", "surname", "family", "last", "familyname", "lname"),
    "preferredName": ("preferredname", "nickname", "knownas", "displayname"),
    "dateOfBirth": ("dob", "birthdate", "dateofbirth", "birthday"),
    "startDate": ("hiredate", "startdate", "employmentstartdate", "joindate", "datejoined", "originalhiredate"),
    "endDate": ("terminationdate", "enddate", "leavedate", "leavingdate"),
    "niNumber": ("nationalinsurancenumber", "ninumber", "nino", "nationalinsurance", "ni"),
    "nhsNumber": ("nhsnumber", "nhsno", "nhs"),
    "email": ("email", "workemail", "emailaddress", "mail", "primaryemailaddr"),
    "phone": ("phone", "mobilephone", "telephone", "phonenumber", "mobile", "workphone", "tel"),
    "jobTitle": ("jobtitle", "title", "position", "role"),
    "employeeNumber": ("employeenumber", "employeeid", "payrollnumber", "staffnumber", "id"),
    "postcode": ("postcode", "zipcode", "zip", "postalcode"),
    "line1": ("address1", "addressline1", "line1", "street"),
    "line2": ("address2", "addressline2", "line2"),
    "town": ("city", "town"),
    "county": ("state", "county", "region"),
    "department": ("department", "dept"),
    "site": ("location", "site", "workplace"),
    "totalPence": ("total", "totalamt", "totalamount", "grossamount"),
    "netPence": ("subtotal", "netamount", "net"),
    "vatPence": ("totaltax", "taxamount", "vatamount", "vat"),
    "issueDate": ("date", "txndate", "issueddate", "invoicedate"),
    "dueDate": ("duedate", "dueon"),
    "number": ("invoicenumber", "docnumber", "number"),
    "vatNumber": ("taxnumber", "vatnumber", "vatregnumber"),
    "name": ("name", "displayname", "companyname"),
}
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\b|\d)|[A-Z]?[a-z]+|\d+")


def tokens(name: str) -> list[str]:
    """``'hireDate'`` / ``'hire_date'`` / ``'HireDate'`` -> ``['hire', 'date']``."""
    out: list[str] = []
    for chunk in re.split(r"[^A-Za-z0-9]+", name):
        out.extend(w.lower() for w in _WORD.findall(chunk))
    return out


def _compact(name: str) -> str:
    return "".join(tokens(name))


@dataclass(frozen=True, slots=True)
class SourceField:
    """A field of the source stream, with a few sample values from a live read."""

    name: str
    samples: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A proposed mapping with how sure we are and why, in plain English."""

    source: str
    target: str
    confidence: float
    reason: str
    transformation: list[TransformStep] = field(default_factory=list)


def _shape(samples: list[Any]) -> tuple[str | None, list[TransformStep]]:
    """Recognise the samples' kind: (kind, steps that would convert them)."""
    vals = [s for s in samples if s not in (None, "")][:20]
    if not vals:
        return None, []

    def every(test: Any) -> bool:
        return all(test(v) for v in vals)

    if every(ids.is_valid_nhs_number):
        return "nhs_number", [TransformStep(function="nhs_number")]
    if every(ids.is_valid_ni_number):
        return "ni_number", [TransformStep(function="ni_number")]
    if every(lambda v: isinstance(v, str) and "@" in v and ids.is_valid_email(v.strip())):
        return "email", [TransformStep(function="trim"), TransformStep(function="lower")]
    if every(lambda v: isinstance(v, str) and ids.is_valid_postcode(v)):
        return "postcode", [TransformStep(function="postcode")]
    if every(lambda v: isinstance(v, str) and v.strip().startswith(("0", "+")) and ids.is_valid_phone(v)):
        return "phone", [TransformStep(function="phone_e164")]
    if every(lambda v: isinstance(v, str) and v.startswith("/Date(")):
        return "date", [TransformStep(function="to_date", args={"from": "dotnet"})]
    if every(lambda v: isinstance(v, str) and re.match(r"^\d{4}-\d{2}-\d{2}", v) is not None):
        return "date", [TransformStep(function="to_date", args={"from": "iso"})]
    slashed = [v for v in vals if isinstance(v, str) and re.match(r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}$", v)]
    if len(slashed) == len(vals):
        firsts = [int(re.split(r"[/.-]", v)[0]) for v in slashed]
        seconds = [int(re.split(r"[/.-]", v)[1]) for v in slashed]
        style = "us" if any(s > 12 for s in seconds) and all(f <= 12 for f in firsts) else "uk"
        return "date", [TransformStep(function="to_date", args={"from": style})]
    if every(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 9e8 < v < 4.2e9):
        return "date", [TransformStep(function="to_datetime", args={"from": "unix"})]
    if every(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 9e11 < v < 4.2e12):
        return "date", [TransformStep(function="to_datetime", args={"from": "unix_ms"})]
    if every(lambda v: isinstance(v, (int, float, str)) and re.match(r"^-?£?[\d,]*\.\d{2}$", str(v)) is not None):
        return "money", [TransformStep(function="pounds_to_pence")]
    return None, []


_KIND_TYPES = {
    "nhs_number": {FieldType.NHS_NUMBER}, "ni_number": {FieldType.NI_NUMBER}, "email": {FieldType.EMAIL},
    "postcode": {FieldType.POSTCODE}, "phone": {FieldType.PHONE}, "date": {FieldType.DATE, FieldType.DATETIME},
    "money": {FieldType.PENCE},
}


def _name_score(source: str, target_path: str) -> tuple[float, str]:
    leaf = target_path.rsplit(".", 1)[-1]
    s, t = _compact(source), _compact(leaf)
    if s == t:
        return 1.0, "the names match"
    if s in _SYNONYMS.get(leaf, ()):
        return 0.9, f"{source} is a usual name for {leaf}"
    ratio = difflib.SequenceMatcher(None, s, t).ratio()
    st, tt = set(tokens(source)), set(tokens(leaf))
    overlap = len(st & tt) / max(1, len(st | tt))
    score = max(ratio * 0.8, overlap * 0.85)
    return score, "the names are similar"


def suggest_mappings(source_fields: list[SourceField], care_type: str | CareType) -> list[Suggestion]:
    """Propose a mapping for each source field that resembles a care-type field; best first, one per target."""
    ct = get_care_type(care_type) if isinstance(care_type, str) else care_type
    candidates: list[Suggestion] = []
    for sf in source_fields:
        kind, steps = _shape(sf.samples)
        for path in ct.field_paths():
            cf = ct.field(path)
            if cf is None or cf.type in (FieldType.OBJECT, FieldType.LIST) or path.startswith("externalRefs"):
                continue
            score, reason = _name_score(sf.name, path)
            shape_fits = kind is not None and cf.type in _KIND_TYPES.get(kind, set())
            if shape_fits:
                weak_name = score < 0.4
                score = min(1.0, score + 0.25) if not weak_name else max(score, 0.55 if kind != "date" else 0.3)
                reason = "" if weak_name else reason + "; "
                reason += f"the sample values look like {'a ' if kind != 'email' else 'an '}{str(kind).replace('_', ' ')}"
            elif kind is not None and score < 0.9:
                score *= 0.7
            if score < 0.5:
                continue
            transformation = list(steps) if shape_fits else []
            if not transformation and cf.type is FieldType.DATE and kind is None and sf.samples:
                transformation = [TransformStep(function="to_date", args={"from": "iso"})]
            if cf.type is FieldType.DATETIME and transformation and transformation[0].function == "to_date":
                transformation = [TransformStep(function="to_datetime", args=dict(transformation[0].args))]
            if cf.type is FieldType.DATE and transformation and transformation[0].function == "to_datetime":
                transformation = [TransformStep(function="to_date", args=dict(transformation[0].args))]
            candidates.append(Suggestion(sf.name, path, round(score, 2), reason, transformation))
    candidates.sort(key=lambda s: -s.confidence)
    used_s: set[str] = set()
    used_t: set[str] = set()
    out: list[Suggestion] = []
    for c in candidates:
        if c.source in used_s or c.target in used_t:
            continue
        used_s.add(c.source)
        used_t.add(c.target)
        out.append(c)
    return out


