"""ORU^R01 (unsolicited observation result) to FHIR R4 ``Observation`` resources, and HL7 ACKs.

Lab systems (Clinisys WinPath/ICE, Sunquest) send one ORU^R01 per report: ``MSH`` (who and when), ``PID``
(the patient, NHS number in PID-3 with assigning authority ``NHS``), one ``OBR`` per test panel and one
``OBX`` per result under it, optionally followed by ``NTE`` comments. Each OBX becomes one FHIR R4
Observation that keeps every code the lab sent (LOINC first when present, then the lab's local code),
the unit (UCUM when it is one), the reference range and the abnormal flag as an interpretation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import hl7

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# HL7 table 0396 coding-system names to FHIR system URIs; anything else is kept as a local system.
CODING_SYSTEMS = {"LN": LOINC, "SCT": SNOMED, "SNM": SNOMED, "SNOMED": SNOMED, "SCTUK": SNOMED}

# OBX-11 result status to FHIR Observation.status.
RESULT_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary", "S": "preliminary",
                 "I": "registered", "X": "cancelled", "D": "entered-in-error", "W": "entered-in-error"}

# OBX-8 abnormal flags (table 0078) to v3 ObservationInterpretation codes and words.
ABNORMAL_FLAGS = {
    "N": ("N", "Normal"), "H": ("H", "High"), "L": ("L", "Low"), "HH": ("HH", "Critical high"),
    "LL": ("LL", "Critical low"), "A": ("A", "Abnormal"), "AA": ("AA", "Critical abnormal"),
    ">": ("H", "High"), "<": ("L", "Low"), "POS": ("POS", "Positive"), "NEG": ("NEG", "Negative"),
    "R": ("R", "Resistant"), "S": ("S", "Susceptible"), "I": ("I", "Intermediate"),
}

# Units labs write that are not valid UCUM, mapped to their UCUM code.
UCUM_ALIASES = {"10*9/L": "10*9/L", "x10^9/L": "10*9/L", "x10*9/L": "10*9/L", "10^9/L": "10*9/L",
                "10^12/L": "10*12/L", "x10^12/L": "10*12/L", "umol/L": "umol/L", "µmol/L": "umol/L",
                "mmol/L": "mmol/L", "g/L": "g/L", "g/dL": "g/dL", "mg/L": "mg/L", "U/L": "U/L", "IU/L": "[IU]/L",
                "mL/min/1.73m2": "mL/min/{1.73_m2}", "ml/min/1.73m2": "mL/min/{1.73_m2}", "%": "%",
                "fL": "fL", "pg": "pg", "mmol/mol": "mmol/mol", "ng/L": "ng/L", "nmol/L": "nmol/L",
                "pmol/L": "pmol/L", "mU/L": "m[IU]/L", "s": "s", "ratio": "{ratio}"}

_RANGE = re.compile(r"^\s*([<>]=?)?\s*(-?\d+(?:\.\d+)?)?\s*(?:-|to)?\s*(-?\d+(?:\.\d+)?)?\s*$")


class Hl7Error(ValueError):
    """A message that is not a well-formed ORU^R01 (the reason says what and where)."""

    def __init__(self, reason: str, *, control_id: str | None = None, segment: str | None = None) -> None:
        self.reason = reason
        self.control_id = control_id
        self.segment = segment
        super().__init__(reason + (f" (segment {segment})" if segment else ""))


@dataclass
class LabReport:
    """One parsed ORU^R01: the message header, the patient and its results as FHIR R4 resources."""

    control_id: str
    sending_application: str
    sending_facility: str
    sent_at: str | None
    nhs_number: str | None
    patient_name: str
    birth_date: str | None
    observations: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)


def _s(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _component(fld: Any, index: int) -> str:
    """Component ``index`` (0-based) of the first repetition of a field, or ''."""
    try:
        rep = fld[0] if isinstance(fld, hl7.Field) else fld
        if isinstance(rep, hl7.Repetition | hl7.Field) and len(rep) > index:
            return _s(rep[index])
        return _s(rep) if index == 0 else ""
    except (IndexError, TypeError):
        return ""


def _field(seg: hl7.Segment, n: int) -> Any:
    return seg[n] if len(seg) > n else ""


def hl7_datetime(value: str) -> str | None:
    """HL7 DTM (``YYYYMMDD[HHMM[SS]][+ZZZZ]``) to an ISO 8601 string; None when empty or unreadable."""
    text = value.strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?", text)
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    if not mo or not d:
        return f"{y}-{mo}" if mo else y
    if not h:
        return f"{y}-{mo}-{d}"
    iso = f"{y}-{mo}-{d}T{h}:{mi or '00'}:{s or '00'}"
    offset = f"{tz[:3]}:{tz[3:]}" if tz else "+00:00"
    try:
        datetime.fromisoformat(iso + offset)
    except ValueError:
        return None
    return iso + offset


def _codings(fld: Any) -> list[dict[str, str]]:
    """CE/CWE triplets (identifier, text, system) and the alternate triplet, LOINC and SNOMED first."""
    out: list[dict[str, str]] = []
    for base in (0, 3):
        code = _component(fld, base)
        if not code:
            continue
        system_name = _component(fld, base + 2)
        system = CODING_SYSTEMS.get(system_name.upper(), f"urn:carehub:hl7:local:{system_name or 'L'}")
        coding = {"system": system, "code": code}
        display = _component(fld, base + 1)
        if display:
            coding["display"] = display
        out.append(coding)
    out.sort(key=lambda c: 0 if c["system"] in (LOINC, SNOMED) else 1)
    return out


def reference_range(text: str, unit: str | None) -> list[dict[str, Any]]:
    """OBX-7 (``115-165``, ``<5``, ``>60``, ``3.5 to 5.3``) as FHIR ``referenceRange``; text kept always."""
    if not text.strip():
        return []
    rng: dict[str, Any] = {"text": text.strip()}
    m = _RANGE.match(text)
    if m:
        op, a, b = m.groups()

        def qty(v: str) -> dict[str, Any]:
            q: dict[str, Any] = {"value": float(v)}
            if unit:
                q.update(unit=unit, system=UCUM, code=UCUM_ALIASES.get(unit, unit))
            return q

        if op and op.startswith("<") and a:
            rng["high"] = qty(a)
        elif op and op.startswith(">") and a:
            rng["low"] = qty(a)
        elif a and b:
            rng["low"], rng["high"] = qty(a), qty(b)
    return [rng]


def _value(value_type: str, raw: Any, unit: str) -> dict[str, Any]:
    text = _s(raw)
    if value_type in ("NM", "SN") and text:
        comparator = ""
        m = re.fullmatch(r"\s*(<=|>=|<|>)?\s*(-?\d+(?:\.\d+)?)\s*", text.replace("^", ""))
        if m:
            comparator, number = m.group(1) or "", m.group(2)
            q: dict[str, Any] = {"value": float(number)}
            if comparator:
                q["comparator"] = comparator
            if unit:
                q["unit"] = unit
                q["system"] = UCUM
                q["code"] = UCUM_ALIASES.get(unit, unit)
            return {"valueQuantity": q}
    if value_type in ("CE", "CWE") and text:
        return {"valueCodeableConcept": {"coding": _codings(raw), "text": _component(raw, 1) or _component(raw, 0)}}
    return {"valueString": text.replace("\\.br\\", "\n")} if text else {}


def _obs_id(control_id: str, obr_index: int, set_id: str, code: str) -> str:
    raw = f"{control_id}|{obr_index}|{set_id}|{code}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def parse_oru(text: str | bytes) -> LabReport:
    """Parse one ORU^R01 into a :class:`LabReport`; raise :class:`Hl7Error` saying what is wrong."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.strip("\x0b\x1c\r\n ").replace("\r\n", "\r").replace("\n", "\r")
    if not text.startswith("MSH"):
        raise Hl7Error("the message does not start with an MSH segment")
    control_guess = _control_id_guess(text)
    try:
        msg = hl7.parse(text)
    except Exception as exc:
        raise Hl7Error(f"not a readable HL7 v2 message: {exc}", control_id=control_guess) from None
    msh = msg.segment("MSH")
    control_id = _s(_field(msh, 10))
    mtype = f"{_component(_field(msh, 9), 0)}^{_component(_field(msh, 9), 1)}"
    if mtype != "ORU^R01":
        raise Hl7Error(f"expected ORU^R01, got {mtype}", control_id=control_id, segment="MSH-9")
    if not control_id:
        raise Hl7Error("MSH-10 (message control id) is empty", segment="MSH-10")
    try:
        pid = msg.segment("PID")
    except KeyError:
        raise Hl7Error("no PID segment: results must name the patient", control_id=control_id) from None
    nhs: str | None = None
    for rep in _field(pid, 3) or []:
        ident = _s(rep[0]) if isinstance(rep, hl7.Repetition) and len(rep) else _s(rep)
        authority = _s(rep[3]) if isinstance(rep, hl7.Repetition) and len(rep) > 3 else ""
        id_type = _s(rep[4]) if isinstance(rep, hl7.Repetition) and len(rep) > 4 else ""
        if (authority.upper() == "NHS" or id_type.upper() == "NH") and re.fullmatch(r"\d{10}", ident):
            nhs = ident
            break
    name = f"{_component(_field(pid, 5), 1)} {_component(_field(pid, 5), 0)}".strip()
    report = LabReport(control_id=control_id, sending_application=_component(_field(msh, 3), 0),
                       sending_facility=_component(_field(msh, 4), 0), sent_at=hl7_datetime(_s(_field(msh, 7))),
                       nhs_number=nhs, patient_name=name, birth_date=hl7_datetime(_s(_field(pid, 7))))
    subject: dict[str, Any] = {"display": name}
    if nhs:
        subject["identifier"] = {"system": NHS_NUMBER, "value": nhs}
    obr: hl7.Segment | None = None
    obr_index = 0
    current: dict[str, Any] | None = None
    last_obs: dict[str, Any] | None = None
    for seg in msg:
        kind = _s(seg[0])
        if kind == "OBR":
            obr, obr_index = seg, obr_index + 1
            panel = _codings(_field(seg, 4))
            current = {
                "resourceType": "DiagnosticReport",
                "id": _obs_id(control_id, obr_index, "OBR", _component(_field(seg, 3), 0)),
                "identifier": [{"system": f"urn:carehub:hl7:filler:{report.sending_facility}",
                                "value": _component(_field(seg, 3), 0) or _component(_field(seg, 2), 0)}],
                "status": RESULT_STATUS.get(_s(_field(seg, 25)), "final"),
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                          "code": "LAB", "display": "Laboratory"}]}],
                "code": {"coding": panel, "text": _component(_field(seg, 4), 1)},
                "subject": subject, "effectiveDateTime": hl7_datetime(_s(_field(seg, 7))),
                "issued": hl7_datetime(_s(_field(seg, 22))) or report.sent_at,
                "performer": [{"display": report.sending_facility}], "result": [],
            }
            report.reports.append(current)
            last_obs = None
        elif kind == "OBX":
            if obr is None or current is None:
                raise Hl7Error("an OBX comes before any OBR", control_id=control_id, segment="OBX")
            last_obs = _observation(seg, report, subject, current, obr, obr_index)
            report.observations.append(last_obs)
            current["result"].append({"reference": f"Observation/{last_obs['id']}"})
        elif kind == "NTE" and last_obs is not None:
            note = _s(_field(seg, 3))
            if note:
                last_obs.setdefault("note", []).append({"text": note})
    if not report.observations:
        raise Hl7Error("the message has no OBX result segments", control_id=control_id, segment="OBX")
    return report


def _observation(seg: hl7.Segment, report: LabReport, subject: dict[str, Any], current: dict[str, Any],
                 obr: hl7.Segment, obr_index: int) -> dict[str, Any]:
    set_id = _s(_field(seg, 1))
    value_type = _s(_field(seg, 2))
    codings = _codings(_field(seg, 3))
    if not codings:
        raise Hl7Error(f"OBX {set_id or '?'}: OBX-3 (observation identifier) is empty",
                       control_id=report.control_id, segment=f"OBX-3 set {set_id}")
    unit = _component(_field(seg, 6), 0)
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _obs_id(report.control_id, obr_index, set_id, codings[0]["code"]),
        "identifier": [{"system": f"urn:carehub:hl7:{report.sending_application}:{report.control_id}",
                        "value": f"{obr_index}.{set_id}"}],
        "status": RESULT_STATUS.get(_s(_field(seg, 11)), "final"),
        "category": [{"coding": [{"system": CATEGORY, "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": codings, "text": _component(_field(seg, 3), 1) or codings[0].get("display", "")},
        "subject": subject,
        "effectiveDateTime": hl7_datetime(_s(_field(seg, 14))) or current.get("effectiveDateTime"),
        "issued": current.get("issued"),
        "performer": [{"display": report.sending_facility}],
        "basedOn": [{"identifier": {"value": _component(_field(obr, 2), 0)}}] if _component(_field(obr, 2), 0) else [],
    }
    obs.update(_value(value_type, _field(seg, 5), unit))
    ranges = reference_range(_s(_field(seg, 7)), unit or None)
    if ranges:
        obs["referenceRange"] = ranges
    flag = _s(_field(seg, 8)).upper()
    if flag:
        code, display = ABNORMAL_FLAGS.get(flag, (flag, flag))
        obs["interpretation"] = [{"coding": [{"system": INTERPRETATION, "code": code, "display": display}],
                                  "text": display}]
    return obs


def _control_id_guess(text: str) -> str | None:
    first = text.split("\r", 1)[0]
    if len(first) < 4:
        return None
    sep = first[3]
    parts = first.split(sep)
    return parts[9].strip() or None if len(parts) > 9 else None


def build_ack(incoming: str | bytes, code: str = "AA", text: str = "", *, control_id: str | None = None) -> str:
    """An ``ACK`` answering ``incoming`` with MSA-1 ``code`` (AA accept, AE error, AR reject).

    Works on unparseable input too (a reject must still name the message when it can).
    """
    if isinstance(incoming, bytes):
        incoming = incoming.decode("utf-8", errors="replace")
    raw = incoming.strip("\x0b\x1c\r\n ").replace("\n", "\r")
    first = raw.split("\r", 1)[0]
    fields = first.split("|") if first.startswith("MSH|") else ["MSH", "^~\\&"]
    while len(fields) < 12:
        fields.append("")
    trigger = fields[8].split("^")[1] if "^" in fields[8] else ""
    now = datetime.now().strftime("%Y%m%d%H%M%S")
    ack_id = hashlib.sha256(f"{raw}|{now}|{code}".encode()).hexdigest()[:20].upper()
    msh = ["MSH", fields[1] or "^~\\&", fields[4], fields[5], fields[2], fields[3], now, "",
           f"ACK^{trigger}^ACK" if trigger else "ACK", ack_id, fields[10] or "P", fields[11] or "2.4"]
    cid = control_id if control_id is not None else (fields[9] if first.startswith("MSH|") else "")
    msa = ["MSA", code, cid]
    if text:
        msa.append(text.replace("|", "/").replace("\r", " ")[:80])
    segments = ["|".join(msh), "|".join(msa)]
    if code != "AA" and text:
        segments.append("|".join(["ERR", "", "", "", "E", "", "", "", text.replace("|", "/")[:200]]))
    return "\r".join(segments) + "\r"


def split_messages(text: str | bytes) -> list[str]:
    """The messages of a file or MESH payload: one message, several back to back, or an HL7 batch
    (``FHS``/``BHS`` ... ``BTS``/``FTS``, whose envelope segments are dropped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    body = text.strip("\x0b\x1c\r\n ").replace("\r\n", "\r").replace("\n", "\r")
    messages: list[list[str]] = []
    for seg in body.split("\r"):
        if not seg.strip() or seg[:3] in ("FHS", "BHS", "BTS", "FTS"):
            continue
        if seg.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(seg)
    return ["\r".join(m) + "\r" for m in messages]
