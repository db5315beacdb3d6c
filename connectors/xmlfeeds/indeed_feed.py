"""Indeed's XML job feed for direct employers: CareHub writes it, Indeed crawls it.

Shape (Indeed's feed specification; element names are Indeed's, all lower case)::

    <?xml version="1.0" encoding="utf-8"?>
    <source>
      <publisher>Rose Court Care Group</publisher>
      <publisherurl>https://rosecourt.example/careers</publisherurl>
      <lastBuildDate>Sat, 28 Nov 2026 09:00:00 GMT</lastBuildDate>
      <job>
        <title><![CDATA[Senior Care Assistant]]></title>
        <date><![CDATA[Fri, 27 Nov 2026 08:00:00 GMT]]></date>
        <referencenumber><![CDATA[WCN-JOB-0001]]></referencenumber>
        <url><![CDATA[https://rosecourt.example/careers/WCN-JOB-0001?source=Indeed]]></url>
        ... company, city, state, country, postalcode, description, salary, jobtype ...
      </job>
    </source>

Every job value is written as CDATA (a ``]]>`` inside the text is split across two sections) and characters
XML 1.0 cannot carry are dropped. :func:`validate_job` checks the required elements, the element set, the
reference number, URL, country code and job types; :func:`write_feed` refuses a feed with any problem, and
:func:`parse_feed` reads a feed back (through defusedxml) with the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from connectors.xmlfeeds.safe import XmlIssue, XmlRejected, parse_xml, text_of

#: Elements Indeed requires on every job (``state`` carries the county or region for UK jobs).
REQUIRED = ("title", "date", "referencenumber", "url", "company", "city", "state", "country", "description")
#: Elements Indeed documents as optional; anything else in a ``<job>`` is refused.
OPTIONAL = ("requisitionid", "sourcename", "postalcode", "streetaddress", "email", "salary", "education",
            "jobtype", "category", "experience", "expirationdate", "remotetype")
ELEMENTS = REQUIRED + OPTIONAL
JOB_TYPES = frozenset({"fulltime", "parttime", "contract", "internship", "temporary"})
MAX_LENGTH = {"title": 200, "referencenumber": 100, "company": 200, "city": 100, "state": 100, "postalcode": 20}

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
_URL = re.compile(r"^https?://[^\s<>\"]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass
class JobFeed:
    """A whole feed: who publishes it, and its jobs in file order (each a dict of element -> text)."""

    publisher: str
    publisherurl: str
    jobs: list[dict[str, str]] = field(default_factory=list)
    last_build: str = ""


def clean_text(value: Any) -> str:
    """``value`` as feed text: characters XML 1.0 cannot carry removed, surrounding white space trimmed."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return feed_date(value)
    return _ILLEGAL.sub("", str(value)).strip()


def feed_date(when: datetime) -> str:
    """An RFC 2822 date in GMT, the form in Indeed's feed samples (``Fri, 27 Nov 2026 08:00:00 GMT``)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return format_datetime(aware.astimezone(UTC), usegmt=True)


def _date_ok(text: str) -> bool:
    try:
        parsedate_to_datetime(text)
        return True
    except (TypeError, ValueError, IndexError):
        pass
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def validate_job(job: Mapping[str, Any], where: str = "/source/job") -> list[XmlIssue]:
    """Every problem of one job against Indeed's element set (empty when the job is valid)."""
    issues: list[XmlIssue] = []
    for name in job:
        if name not in ELEMENTS:
            issues.append(XmlIssue(f"{where}/{name}", "not an element of Indeed's job feed"))
    values = {k: clean_text(v) for k, v in job.items()}
    for name in REQUIRED:
        if not values.get(name):
            issues.append(XmlIssue(f"{where}/{name}", "a value is required"))
    for name, limit in MAX_LENGTH.items():
        if len(values.get(name, "")) > limit:
            issues.append(XmlIssue(f"{where}/{name}", f"longer than {limit} characters"))
    ref = values.get("referencenumber", "")
    if ref and not _REF.match(ref):
        issues.append(XmlIssue(f"{where}/referencenumber", "letters, digits and . _ : / - only", ref))
    for name in ("url",):
        if values.get(name) and not _URL.match(values[name]):
            issues.append(XmlIssue(f"{where}/{name}", "not an absolute http(s) URL", values[name]))
    if values.get("country") and not _COUNTRY.match(values["country"]):
        issues.append(XmlIssue(f"{where}/country", "not a two-letter ISO country code", values["country"]))
    for name in ("date", "expirationdate"):
        if values.get(name) and not _date_ok(values[name]):
            issues.append(XmlIssue(f"{where}/{name}", "not an RFC 2822 or ISO 8601 date", values[name]))
    if values.get("jobtype"):
        kinds = [k.strip() for k in values["jobtype"].split(",")]
        unknown = [k for k in kinds if k not in JOB_TYPES]
        if unknown:
            issues.append(XmlIssue(f"{where}/jobtype", f"job types are {', '.join(sorted(JOB_TYPES))}",
                                   ", ".join(unknown)))
    return issues


def validate_feed(feed: JobFeed) -> list[XmlIssue]:
    """Every problem of a feed: publisher fields, each job, and reference numbers used twice."""
    issues: list[XmlIssue] = []
    if not clean_text(feed.publisher):
        issues.append(XmlIssue("/source/publisher", "a value is required"))
    if not _URL.match(clean_text(feed.publisherurl)):
        issues.append(XmlIssue("/source/publisherurl", "not an absolute http(s) URL", feed.publisherurl))
    seen: set[str] = set()
    for n, job in enumerate(feed.jobs, start=1):
        where = f"/source/job[{n}]"
        issues.extend(validate_job(job, where))
        ref = clean_text(job.get("referencenumber"))
        if ref in seen:
            issues.append(XmlIssue(f"{where}/referencenumber", "used by an earlier job in this feed", ref))
        seen.add(ref)
    return issues


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_feed(feed: JobFeed, *, built: datetime | None = None, filename: str = "indeed_jobs.xml") -> bytes:
    """The feed as UTF-8 XML; :class:`XmlRejected` (naming element paths) when any job is invalid."""
    issues = validate_feed(feed)
    if issues:
        raise XmlRejected(filename, issues)
    stamp = feed.last_build or feed_date(built or datetime.now(UTC))
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<source>",
           f"  <publisher>{_plain(clean_text(feed.publisher))}</publisher>",
           f"  <publisherurl>{_plain(clean_text(feed.publisherurl))}</publisherurl>",
           f"  <lastBuildDate>{_plain(stamp)}</lastBuildDate>"]
    for job in feed.jobs:
        out.append("  <job>")
        for name in ELEMENTS:  # a fixed element order: the same jobs always give the same bytes
            text = clean_text(job.get(name))
            if text:
                out.append(f"    <{name}>{_cdata(text)}</{name}>")
        out.append("  </job>")
    out.append("</source>")
    return ("\n".join(out) + "\n").encode("utf-8")


def parse_feed(data: bytes, filename: str = "indeed_jobs.xml", *, validate: bool = True) -> JobFeed:
    """A feed read back (defusedxml); with ``validate`` every problem is raised as :class:`XmlRejected`."""
    root = parse_xml(data, filename)
    if root.tag != "source":
        raise XmlRejected(filename, [XmlIssue(f"/{root.tag}", "the root element must be <source>")])
    feed = JobFeed(publisher=text_of(root.find("publisher")), publisherurl=text_of(root.find("publisherurl")),
                   last_build=text_of(root.find("lastBuildDate")))
    for element in root.findall("job"):
        job: dict[str, str] = {}
        for child in element:
            job[child.tag] = "".join(child.itertext()).strip()
        feed.jobs.append(job)
    if validate:
        issues = validate_feed(feed)
        if issues:
            raise XmlRejected(filename, issues)
    return feed


def upsert_jobs(feed: JobFeed, jobs: Iterable[Mapping[str, str]], remove: Sequence[str] = ()) -> JobFeed:
    """A new feed with ``jobs`` replacing those of the same reference number (new ones appended, in order)
    and the reference numbers in ``remove`` left out (Indeed expires a job that leaves the feed)."""
    by_ref = {job.get("referencenumber", ""): dict(job) for job in feed.jobs}
    for job in jobs:
        by_ref[job.get("referencenumber", "")] = dict(job)
    for ref in remove:
        by_ref.pop(ref, None)
    return JobFeed(feed.publisher, feed.publisherurl, list(by_ref.values()))
