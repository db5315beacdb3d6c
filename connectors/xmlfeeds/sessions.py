"""Sessions of the XML routes: folders, not HTTP (see :class:`connectors.files.session.LocalSession`).

Inbox readers take new files only (by content hash, kept in the checkpoint), oldest first, one page per file.
A file that is unsafe or breaks its format imports nothing: it moves to ``inbox_dir/rejected/`` with a
``.reason.txt`` beside it, and once the good files' pages are through the read raises
:class:`~connectors.xmlfeeds.safe.XmlRejected` naming every problem by element path and reason.

* :class:`IndeedSession`: ``jobs`` writes the XML job feed (``outbox_dir/<feed_file>``, default
  ``indeed_jobs.xml``) that the home publishes at the URL Indeed crawls. Indeed Apply applications are not read
  here: the ``applications`` stream is webhook-fed (``source: webhook``), verified by the app's receiver.
* :class:`JaggaerFilesSession`: ``purchase_orders`` reads cXML ``OrderRequest`` files; ``order_confirmations``
  writes one cXML ``ConfirmationRequest`` per order into ``outbox_dir``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from connectors.files.atomic import write_atomically
from connectors.files.session import LocalSession, file_digest
from connectors.runtime import ConnectionTest
from connectors.xmlfeeds.cxml import confirmation_request, parse_order_request
from connectors.xmlfeeds.indeed_feed import (
    JobFeed,
    clean_text,
    feed_date,
    parse_feed,
    upsert_jobs,
    validate_job,
    write_feed,
)
from connectors.xmlfeeds.safe import XmlRejected
from engine.ports import OutboundRecord, ReadPage, SourceRecord, WriteOutcome


class XmlFolderSession(LocalSession):
    """Shared folder handling: the inbox, new-file detection, quarantine of rejected files."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rejected: list[XmlRejected] = []

    def _pattern(self, stream: str) -> str:
        spec = self.stream(stream)
        return spec.params.get("pattern") or "*.xml"

    def _candidates(self, stream: str) -> list[Path]:
        return self._inbox_files(self._pattern(stream))

    def parse(self, stream: str, data: bytes, filename: str) -> list[dict[str, Any]]:
        """The records of one inbox file (raises :class:`XmlRejected`)."""
        raise ConnectorError(f"{self.manifest.id}.{stream} is not read from files")

    def _quarantine(self, path: Path, problem: XmlRejected) -> None:
        target = path.parent / "rejected"
        target.mkdir(exist_ok=True)
        os.replace(path, target / path.name)
        (target / f"{path.name}.reason.txt").write_text(str(problem) + "\n", encoding="utf-8")

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """New files of the stream, oldest first, one page per file; rejected files import nothing."""
        spec = self.stream(stream)
        imported: dict[str, str] = dict((checkpoint or {}).get("imported") or {})
        done = set(imported.values())
        self.rejected = []
        emitted = False
        for path in self._candidates(stream):
            data = path.read_bytes()
            digest = file_digest(data)
            if digest in done:
                continue
            try:
                rows = self.parse(stream, data, path.name)
            except XmlRejected as exc:
                self.rejected.append(exc)
                self._quarantine(path, exc)
                continue
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            records = [SourceRecord(external_id=str(row[spec.primary_key]), data={**row, "_file": path.name},
                                    updated_at=stamp) for row in rows]
            imported[path.name] = digest
            done.add(digest)
            emitted = True
            yield ReadPage(records, {"imported": dict(imported)})
        if not emitted:
            yield ReadPage([], {"imported": dict(imported)})
        if self.rejected:
            # Raised after the good files' pages, so they are stored; the run then names the bad files.
            if len(self.rejected) == 1:
                raise self.rejected[0]
            raise XmlRejected(" and ".join(r.filename for r in self.rejected),
                              [i for r in self.rejected for i in r.issues])

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """Records of the newest valid file (nothing is moved or remembered)."""
        spec = self.stream(stream)
        for path in reversed(self._candidates(stream)):
            try:
                rows = self.parse(stream, path.read_bytes(), path.name)
            except XmlRejected:
                continue
            return [SourceRecord(external_id=str(r[spec.primary_key]), data=r) for r in rows[:n]]
        return []

    async def test_connection(self) -> ConnectionTest:
        """The folders exist and are usable; say how many files are waiting."""
        try:
            inbox = self._dir("inbox_dir")
            if not inbox.is_dir():
                return ConnectionTest(False, f"The inbox folder {inbox} does not exist.")
            waiting = sum(len(self._candidates(name)) for name, s in self.manifest.streams.items()
                          if s.write is None)
            if self.config.get("outbox_dir"):
                out = self._dir("outbox_dir")
                out.mkdir(parents=True, exist_ok=True)
                if not os.access(out, os.W_OK):
                    return ConnectionTest(False, f"CareHub cannot write to the outbox folder {out}.")
        except ConnectorError as exc:
            return ConnectionTest(False, str(exc))
        return ConnectionTest(True, f"Folders ready: {waiting} file(s) waiting to import.", {"waiting": waiting})


class IndeedSession(LocalSession):
    """Indeed for direct employers: the XML job feed out (applications come in by the app's webhook receiver)."""

    def feed_path(self) -> Path:
        """Where the feed is written (``outbox_dir/feed_file``)."""
        name = str(self.config.get("feed_file") or "indeed_jobs.xml")
        if "/" in name or "\\" in name or name.startswith("."):
            raise ConnectorError(f"feed_file must be a plain file name, got {name!r}")
        return self._dir("outbox_dir") / name

    def current_feed(self) -> JobFeed:
        """The feed as last written, or an empty one with the connection's publisher."""
        path = self.feed_path()
        publisher = str(self.config.get("company") or "")
        publisher_url = str(self.config.get("publisher_url") or "")
        if path.exists():
            feed = parse_feed(path.read_bytes(), path.name, validate=False)
            return JobFeed(publisher or feed.publisher, publisher_url or feed.publisherurl, feed.jobs)
        return JobFeed(publisher, publisher_url)

    def job_element(self, record: OutboundRecord) -> dict[str, str]:
        """A feed job from an outbound payload, the connection's company/location filling what it lacks."""
        payload = dict(record.payload)
        ref = clean_text(payload.get("referencenumber") or record.external_id or f"WCN-{record.idempotency_key[:12]}")
        job = {name: clean_text(value) for name, value in payload.items() if name != "status"}
        job["referencenumber"] = ref
        defaults = {"company": self.config.get("company"), "city": self.config.get("city"),
                    "state": self.config.get("county"), "postalcode": self.config.get("postcode"),
                    "country": self.config.get("country") or "GB", "email": self.config.get("apply_email")}
        for name, value in defaults.items():
            if not job.get(name) and value:
                job[name] = clean_text(value)
        if not job.get("url") and self.config.get("job_url"):
            job["url"] = str(self.config["job_url"]).replace("{referencenumber}", ref)
        if not job.get("date"):
            job["date"] = feed_date(datetime.now(UTC))
        return {k: v for k, v in job.items() if v}

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """``jobs``: the feed as last written (one page). Applications are webhook-fed, not read here."""
        spec = self.stream(stream)
        if spec.source == "webhook":
            raise ConnectorError(f"{self.manifest.id}.{stream} is fed by Indeed Apply deliveries to the "
                                 "integration's inbound webhook, not read from Indeed")
        feed = self.current_feed()
        yield ReadPage([SourceRecord(external_id=j["referencenumber"], data=j) for j in feed.jobs], None)

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """The first jobs of the current feed."""
        if self.stream(stream).source == "webhook":
            return []
        return [SourceRecord(external_id=j["referencenumber"], data=j) for j in self.current_feed().jobs[:n]]

    async def test_connection(self) -> ConnectionTest:
        """The outbox folder is writable and the feed's publisher settings are there."""
        try:
            out = self.feed_path().parent
            out.mkdir(parents=True, exist_ok=True)
            if not os.access(out, os.W_OK):
                return ConnectionTest(False, f"CareHub cannot write to the outbox folder {out}.")
            feed = self.current_feed()
        except (ConnectorError, OSError) as exc:
            return ConnectionTest(False, str(exc))
        missing = [name for name in ("company", "publisher_url", "job_url") if not self.config.get(name)]
        if missing:
            return ConnectionTest(False, f"Set {', '.join(missing)} so the feed names the employer and each job's page.")
        return ConnectionTest(True, f"Feed folder ready: {len(feed.jobs)} job(s) in the feed.", {"jobs": len(feed.jobs)})

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """Upsert the jobs into the feed (closed ones leave it) and rewrite it atomically.

        The whole feed is validated first: one invalid job fails only itself, with its element paths."""
        spec = self.stream(stream)
        if spec.write is None or stream != "jobs":
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        if not records:
            return []
        path = self.feed_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        feed = self.current_feed()
        outcomes: dict[str, WriteOutcome] = {}
        keep: list[dict[str, str]] = []
        remove: list[str] = []
        for r in records:
            job = self.job_element(r)
            ref = job["referencenumber"]
            if str(r.payload.get("status") or "").lower() in ("closed", "expired", "filled"):
                remove.append(ref)
                outcomes[r.idempotency_key] = WriteOutcome(r.idempotency_key, True, external_id=ref,
                                                           data={"file": path.name, "removed": True})
                continue
            problems = validate_job(job, f"/source/job[referencenumber={ref}]")
            if problems:
                outcomes[r.idempotency_key] = WriteOutcome(r.idempotency_key, False, external_id=ref,
                                                           error_code="feed",
                                                           error_message="; ".join(str(p) for p in problems))
                continue
            keep.append(job)
            outcomes[r.idempotency_key] = WriteOutcome(r.idempotency_key, True, external_id=ref,
                                                       data={"file": path.name})
        new_feed = upsert_jobs(feed, keep, remove)
        before = {j.get("referencenumber"): {k: v for k, v in j.items() if k != "date"} for j in feed.jobs}
        after = {j.get("referencenumber"): {k: v for k, v in j.items() if k != "date"} for j in new_feed.jobs}
        if before != after or not path.exists():
            try:
                write_atomically(path, write_feed(new_feed, filename=path.name))
            except XmlRejected as exc:  # publisher settings missing: every record fails with the reason
                return [WriteOutcome(r.idempotency_key, False, error_code="feed", error_message=str(exc))
                        for r in records]
        else:
            outcomes = {k: WriteOutcome(o.idempotency_key, o.ok, o.external_id, o.error_code, o.error_message,
                                        data={**o.data, "duplicate": True} if o.ok else o.data)
                        for k, o in outcomes.items()}
        return [outcomes[r.idempotency_key] for r in records]


class JaggaerFilesSession(XmlFolderSession):
    """Jaggaer by cXML files: purchase orders in, order confirmations out."""

    def parse(self, stream: str, data: bytes, filename: str) -> list[dict[str, Any]]:
        """A cXML ``OrderRequest`` as one purchase order record with its lines."""
        if stream != "purchase_orders":
            return super().parse(stream, data, filename)
        return [parse_order_request(data, filename)]

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """One ``ConfirmationRequest`` file per record in ``outbox_dir`` (atomic; a retried record finds its
        file and is reported once, not written twice)."""
        spec = self.stream(stream)
        if spec.write is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        outbox = self._dir("outbox_dir")
        outbox.mkdir(parents=True, exist_ok=True)
        prefix = spec.params.get("out_prefix", "confirmation")
        out: list[WriteOutcome] = []
        for r in records:
            payload: Mapping[str, Any] = r.payload
            order_id = str(payload.get("orderID") or "")
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in order_id)[:60]
            target = outbox / f"{prefix}_{safe}_{r.idempotency_key[:12]}.xml"
            if target.exists():
                out.append(WriteOutcome(r.idempotency_key, True, external_id=order_id,
                                        data={"file": target.name, "duplicate": True}))
                continue
            try:
                data = confirmation_request(payload, sender=str(self.config.get("sender_identity") or "CareHub"))
            except ValueError as exc:
                out.append(WriteOutcome(r.idempotency_key, False, error_code="cxml", error_message=str(exc)))
                continue
            write_atomically(target, data)
            out.append(WriteOutcome(r.idempotency_key, True, external_id=order_id, data={"file": target.name}))
        return out
