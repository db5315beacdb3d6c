"""Care-home staff shared by the HR, rota and payroll sandboxes (Breathe HR, RotaCloud, BrightPay, ...).

Each vendor sandbox dresses the same deterministic people in its own field names, so a home that runs
two of these systems side by side (a rota and a payroll) sees the same staff in both, as in real life.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from connectors.sandboxes.common import CARE_HOMES, JOB_TITLES, Dataset, pools, rng_for

DEPARTMENTS = ("Care", "Nursing", "Kitchen", "Housekeeping", "Activities", "Maintenance", "Management")
CONTRACTS = ("Full time", "Part time", "Bank", "Zero hours")
HOURLY_RATES = (11.44, 11.90, 12.21, 12.60, 13.15, 14.00, 15.25)
SALARIES = (34500, 38200, 41250, 44800)
COUNTIES = ("West Yorkshire", "Greater Manchester", "Kent", "Surrey", "West Midlands")


@dataclass(frozen=True)
class StaffMember:
    """One member of staff at a care home, before any vendor's field names are applied."""

    index: int
    first_name: str
    last_name: str
    known_as: str
    gender: str
    date_of_birth: date
    email: str
    personal_email: str
    mobile: str
    address1: str
    town: str
    county: str
    postcode: str
    ni_number: str
    job_title: str
    department: str
    site: str
    contract: str
    start_date: date
    leaving_date: date | None
    hourly: bool
    hourly_rate: float
    salary: int
    contracted_hours: float

    @property
    def full_name(self) -> str:
        """First and last name."""
        return f"{self.first_name} {self.last_name}"

    @property
    def active(self) -> bool:
        """Still employed."""
        return self.leaving_date is None


NI_PREFIXES = ("AB", "CE", "JK", "LP", "NW", "PR", "SH", "WL")
MOBILE_PREFIXES = ("07400", "07507", "07534", "07766", "07800", "07856", "07956")


def valid_format_ni(r: random.Random) -> str:
    """A National Insurance number in HMRC's format (the ``QQ`` test prefix fails format checks)."""
    return f"{r.choice(NI_PREFIXES)}{r.randrange(0, 1_000_000):06d}{r.choice('ABCD')}"


def uk_mobile(r: random.Random) -> str:
    """A UK mobile number that passes libphonenumber's checks (Ofcom's drama range does not)."""
    return f"{r.choice(MOBILE_PREFIXES)} {r.randrange(100000, 1000000)}"


def uk_landline(r: random.Random) -> str:
    """A Leeds, Manchester or London landline number that passes libphonenumber's checks."""
    area, first = r.choice((("0113", (200, 400)), ("0161", (200, 500)), ("020", (7000, 8999))))
    if area == "020":
        return f"020 {r.randrange(*first)} {r.randrange(1000, 10000)}"
    return f"{area} {r.randrange(*first)} {r.randrange(1000, 10000)}"


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def staff_member(seed: int, i: int, domain: str = "willowcourtcare.example") -> StaffMember:
    """Staff member ``i`` of the home (the same person for the same seed in every sandbox)."""
    r = rng_for(seed, "workforce.staff", i)
    p = pools(seed)
    first, last = r.choice(p.first_names), r.choice(p.last_names)
    job = JOB_TITLES[0] if i % 3 == 0 else r.choice(JOB_TITLES)
    hourly = job not in ("Deputy Manager", "Registered Nurse")
    start = date(2012, 1, 2) + timedelta(days=r.randrange(0, 12 * 365))
    left = r.random() < 0.08
    contract = r.choice(CONTRACTS)
    hours = {"Full time": 37.5, "Part time": r.choice((16.0, 20.0, 24.0, 30.0)), "Bank": 0.0, "Zero hours": 0.0}
    return StaffMember(
        index=i, first_name=first, last_name=last, known_as=first if r.random() < 0.85 else first[:3],
        gender=r.choice(("Female", "Female", "Female", "Male")),
        date_of_birth=date(1960, 1, 1) + timedelta(days=r.randrange(0, 42 * 365)),
        email=f"{_slug(first)}.{_slug(last)}{i}@{domain}", personal_email=f"{_slug(first)}{i}@example.org",
        mobile=uk_mobile(r), address1=r.choice(p.streets), town=r.choice(p.towns),
        county=r.choice(COUNTIES), postcode=r.choice(p.postcodes), ni_number=valid_format_ni(r), job_title=job,
        department="Nursing" if job == "Registered Nurse" else r.choice(DEPARTMENTS), site=r.choice(CARE_HOMES),
        contract=contract, start_date=start,
        leaving_date=start + timedelta(days=r.randrange(200, 2000)) if left else None, hourly=hourly,
        hourly_rate=r.choice(HOURLY_RATES), salary=r.choice(SALARIES), contracted_hours=hours[contract],
    )


# --------------------------------------------------------------------------- fast views of large data sets


def _version(data: Dataset) -> tuple[int, float]:
    """Changes whenever a record is written (the overlay only grows or moves forward in time)."""
    newest = max((ts.timestamp() for ts, _ in data.overlay.values()), default=0.0)
    return len(data.overlay), newest


class FilterCache:
    """Filtered (and sorted) views of a Dataset, rebuilt only after a write.

    Vendor filters (a date window, a status, one bank account) cannot use the Dataset's update-time order,
    so the first request scans once and later pages cost only their own records, even at 100,000 records.
    """

    def __init__(self) -> None:
        self._views: dict[Hashable, tuple[tuple[int, float], list[str]]] = {}

    def ids(self, data: Dataset, key: Hashable, keep: Callable[[dict[str, Any]], bool],
            ident: Callable[[dict[str, Any]], str], sort: Callable[[dict[str, Any]], Any] | None = None) -> list[str]:
        """Ids of the records ``keep`` accepts, in ``sort`` order (update order when None)."""
        version = _version(data)
        hit = self._views.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        rows = [r for r in data.iter() if keep(r)]
        if sort is not None:
            rows.sort(key=sort)
        ids = [ident(r) for r in rows]
        if len(self._views) > 64:
            self._views.clear()
        self._views[key] = (version, ids)
        return ids

    def page(self, data: Dataset, key: Hashable, keep: Callable[[dict[str, Any]], bool],
             ident: Callable[[dict[str, Any]], str], offset: int, limit: int | None,
             sort: Callable[[dict[str, Any]], Any] | None = None) -> tuple[list[dict[str, Any]], int]:
        """One page of the filtered view and its total."""
        ids = self.ids(data, key, keep, ident, sort)
        chosen = ids[offset:] if limit is None else ids[offset:offset + limit]
        return [r for r in (data.get(i) for i in chosen) if r is not None], len(ids)


def day_window(data: Dataset, per_day: int, anchor: datetime, lo: datetime, hi: datetime,
               start_of: Callable[[dict[str, Any]], datetime]) -> list[dict[str, Any]]:
    """Records starting within ``[lo, hi]``, where base record ``i`` falls on day ``anchor + i // per_day``.

    Only the base records of the days in the window are generated; written records (edits and new ones)
    come from the overlay and are filtered exactly, so a moved or created shift is never missed.
    """
    first = max(0, ((lo - anchor).days - 1) * per_day)
    last = min(data.n, ((hi - anchor).days + 2) * per_day)
    rows: list[dict[str, Any]] = []
    for i in range(first, max(first, last)):
        rid = data.id_of(i)
        if rid not in data.overlay:
            rows.append(data.make(i, data.base_time(i)))
    rows.extend(rec for _, rec in data.overlay.values())
    return [r for r in rows if lo <= start_of(r) <= hi]
