"""Benchmark: a 30-field design over 100,000 records vs a hand-written Python function doing the same work.

Prints records/second for both and their ratio (engine / hand-written), measured in the same run.
Budget: ratio >= 0.4; exits 1 when below.  Run: .venv/bin/python bench/mapping.py [records]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import identifiers as ids
from engine.mapping import compile_design
from engine.mapping.validation import mask

BUDGET = 0.4
LONDON = ZoneInfo("Europe/London")


def m(source: str, target: str, *steps: tuple[Any, ...]) -> dict[str, Any]:
    return {"sourceField": source, "targetField": target,
            "transformation": [{"function": s[0], "args": s[1] if len(s) > 1 else {}} for s in steps]}


DESIGN = {
    "connector": "bench", "stream": "staff", "careType": "Employee",
    "mappings": [
        m("id", "employeeNumber", ("to_text",)), m("first", "givenName", ("trim",)), m("last", "familyName", ("trim",)),
        m("pref", "preferredName", ("title_case",)), m("dob", "dateOfBirth", ("to_date", {"from": "uk"})),
        m("ni", "niNumber", ("ni_number",)), m("mail", "email", ("trim",), ("lower",)),
        m("addr.l1", "address.line1"), m("addr.l2", "address.line2"), m("addr.town", "address.town", ("title_case",)),
        m("addr.county", "address.county"), m("addr.pc", "address.postcode", ("postcode",)),
        m("hired", "startDate", ("to_date", {"from": "us"})), m("left", "endDate", ("to_date", {"from": "iso"})),
        m("job", "jobTitle"), m("dept", "department", ("upper",)), m("site", "site"),
        m("etype", "employmentType", ("value_map", {"map": {"FT": "full-time", "PT": "part-time"}})),
        m("hours", "contractedHoursPerWeek", ("to_number",)), m("rate", "payRatePence", ("pounds_to_pence",)),
        m("basis", "payBasis", ("lower",)), m("payroll", "payrollId"),
        m("dbs", "dbsCheckDate", ("to_date", {"from": "dotnet"})), m("rtw", "rightToWorkExpiry", ("to_date", {"from": "unix"})),
        m("active", "status", ("to_boolean",), ("value_map", {"map": {"True": "active", "False": "inactive"}})),
        m("xid", "externalRefs.bamboohr"), m("other", "externalRefs.other"), m("tel", "externalRefs.tel"),
        m("first2", "externalRefs.display", ("concat", {"fields": ["last"]})), m("grade", "externalRefs.grade", ("upper",)),
    ],
}
assert len(DESIGN["mappings"]) == 30


def record(i: int) -> dict[str, Any]:
    return {"id": i, "first": " Amara ", "last": "Okafor ", "pref": "amy", "dob": "12/01/1980", "ni": "AB 12 34 56 C",
            "mail": " Amara.Okafor@Example.org ", "addr": {"l1": "1 High St", "l2": "Flat 2", "town": "leeds",
            "county": "West Yorkshire", "pc": "ls1 6ae"}, "hired": "03/25/2021", "left": "2025-01-31", "job": "Carer",
            "dept": "care", "site": "Oak House", "etype": "FT" if i % 2 else "PT", "hours": "37.5", "rate": "11.44",
            "basis": "Hourly", "payroll": f"P{i}", "dbs": "/Date(1700000000000+0000)/", "rtw": 1900000000, "active": "yes",
            "xid": str(i), "other": "o", "tel": "07911 123456", "first2": "Amara", "grade": "b"}


# ---------------------------------------------------------------- the hand-written baseline (same work, same checks)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dmy(text: str, dayfirst: bool) -> str:
    a, b, y = text.split("/")
    d, mo = (int(a), int(b)) if dayfirst else (int(b), int(a))
    return date(int(y), mo, d).isoformat()


def hand_written(r: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    v: dict[str, Any] = {}
    v["employeeNumber"] = str(r["id"])
    v["givenName"] = r["first"].strip()
    v["familyName"] = r["last"].strip()
    v["preferredName"] = r["pref"].title()
    v["dateOfBirth"] = _dmy(r["dob"], True)
    ni = ids.normalise_ni_number(r["ni"])
    if ni is None:
        errors.append(f"niNumber {mask(r['ni'])} is not valid")
    else:
        v["niNumber"] = ni
    email = r["mail"].strip().lower()
    if ids.is_valid_email(email):
        v["email"] = email
    else:
        errors.append("email invalid")
    addr = r["addr"]
    pc = ids.normalise_postcode(addr["pc"])
    v["address"] = {"line1": addr["l1"], "line2": addr["l2"], "town": addr["town"].title(), "county": addr["county"]}
    if pc is None:
        errors.append("postcode invalid")
    else:
        v["address"]["postcode"] = pc
    v["startDate"] = _dmy(r["hired"], False)
    v["endDate"] = date.fromisoformat(r["left"]).isoformat()
    v["jobTitle"] = r["job"]
    v["department"] = r["dept"].upper()
    v["site"] = r["site"]
    v["employmentType"] = {"FT": "full-time", "PT": "part-time"}[r["etype"]]
    v["contractedHoursPerWeek"] = float(r["hours"])
    v["payRatePence"] = int((Decimal(r["rate"]) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    v["payBasis"] = r["basis"].lower()
    v["payrollId"] = r["payroll"]
    ms = int(r["dbs"][6:-7])
    v["dbsCheckDate"] = (_EPOCH + timedelta(milliseconds=ms)).astimezone(LONDON).date().isoformat()
    v["rightToWorkExpiry"] = (_EPOCH + timedelta(seconds=r["rtw"])).astimezone(LONDON).date().isoformat()
    active = str(r["active"]).strip().lower() in ("true", "yes", "y", "1", "t", "on", "active")
    v["status"] = "active" if active else "inactive"
    v["externalRefs"] = {"bamboohr": r["xid"], "other": r["other"], "tel": r["tel"],
                         "display": " ".join(x for x in (r["first2"], r["last"]) if x), "grade": r["grade"].upper()}
    for k in ("dateOfBirth", "startDate", "endDate", "dbsCheckDate", "rightToWorkExpiry"):
        date.fromisoformat(v[k])
    for k in ("employmentType", "payBasis", "status"):
        if not isinstance(v[k], str):
            errors.append(k)
    return v, errors


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    records = [record(i) for i in range(n)]
    compiled = compile_design(DESIGN)
    check = compiled.apply(records[1])
    assert check.ok, check.errors
    _hv, herr = hand_written(records[1])
    assert not herr

    best_engine = best_hand = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for r in records:
            hand_written(r)
        best_hand = min(best_hand, time.perf_counter() - t0)
        t0 = time.perf_counter()
        apply = compiled.apply
        for r in records:
            apply(r)
        best_engine = min(best_engine, time.perf_counter() - t0)

    samples = records[:50]
    t0 = time.perf_counter()
    from engine.mapping import preview

    preview(compiled, samples, {}, key_field="id")
    preview_ms = (time.perf_counter() - t0) * 1000

    ratio = best_hand / best_engine
    print(f"records: {n}, fields: 30")
    print(f"hand-written: {n / best_hand:,.0f} records/s")
    print(f"engine:       {n / best_engine:,.0f} records/s")
    print(f"ratio (engine / hand-written): {ratio:.2f} (budget >= {BUDGET})")
    print(f"preview of 50 records: {preview_ms:.1f} ms")
    if ratio < BUDGET:
        print("FAIL: below budget")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
