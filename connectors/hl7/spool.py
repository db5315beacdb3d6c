"""A durable spool between the MLLP listener and sync runs.

The listener ACKs a lab message only after :meth:`Spool.store` has written it to disk (written to a
temporary name, fsynced, renamed), so an ACKed result survives a crash. A sync run then reads the spool
through :class:`Hl7SpoolSession` like any other stream: one page per message. The engine reads ahead while it
stores, so a read never moves its own files: each checkpoint names every message read so far
(``pending_done``) and the next read moves those of the last committed checkpoint to ``done/``. Nothing is
lost, and a message read twice parses to the same record ids. Unreadable files move to ``rejected/`` with the reason
beside them, and the read ends with an error naming them, so the run surfaces them in the errors inbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from connectors.files.atomic import write_atomically
from connectors.files.session import LocalSession
from connectors.hl7.oru import Hl7Error, LabReport, parse_oru, split_messages
from engine.ports import ReadPage, SourceRecord


class Spool:
    """A folder of received HL7 messages, one file per message control id."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def file_name(report: LabReport) -> str:
        """``<sending app>_<control id>.hl7`` with unsafe characters replaced (redelivery overwrites)."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{report.sending_application}_{report.control_id}")
        digest = hashlib.sha256(f"{report.sending_application}|{report.control_id}".encode()).hexdigest()[:8]
        return f"{safe[:80]}_{digest}.hl7"

    def _write(self, name: str, raw: str) -> None:
        write_atomically(self.directory / name, raw.encode("utf-8"))

    async def store(self, report: LabReport, raw: str) -> None:
        """The MLLP handler: persist the raw message before the ACK goes back."""
        await asyncio.to_thread(self._write, self.file_name(report), raw)

    def waiting(self) -> list[Path]:
        """Spooled messages, oldest first."""
        files = [p for p in self.directory.glob("*.hl7") if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class RejectedHl7:
    """A spooled file that could not be read."""

    name: str
    reason: str


class Hl7SpoolSession(LocalSession):
    """Reads lab results from the spool (``config.spool_dir``); see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rejected: list[RejectedHl7] = []

    @property
    def spool(self) -> Spool:
        """The spool of this connection."""
        folder = self.config.get("spool_dir")
        if not folder:
            raise ConnectorError("the connection has no `spool_dir` set")
        return Spool(str(folder))

    def _finish(self, names: list[str]) -> None:
        done = self.spool.directory / "done"
        done.mkdir(exist_ok=True)
        for name in names:
            src = self.spool.directory / name
            if src.exists():
                os.replace(src, done / name)

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """One page per spooled message; messages of the committed checkpoint move to ``done/`` first."""
        self.stream(stream)
        self._finish(list((checkpoint or {}).get("pending_done") or []))
        self.rejected = []
        pending: list[str] = []
        emitted = False
        for path in self.spool.waiting():
            raw = path.read_text(encoding="utf-8", errors="replace")
            try:
                reports = [parse_oru(m) for m in split_messages(raw)] or [parse_oru(raw)]
            except Hl7Error as exc:
                self.rejected.append(RejectedHl7(path.name, exc.reason))
                bad = self.spool.directory / "rejected"
                bad.mkdir(exist_ok=True)
                os.replace(path, bad / path.name)
                (bad / f"{path.name}.reason.txt").write_text(exc.reason + "\n", encoding="utf-8")
                continue
            pending.append(path.name)
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            records = [SourceRecord(external_id=str(o["id"]), data={**o, "labControlId": report.control_id,
                                                                      "sendingApplication": report.sending_application},
                                    updated_at=stamp) for report in reports for o in report.observations]
            emitted = True
            yield ReadPage(records, {"pending_done": list(pending)})
        if not emitted:
            yield ReadPage([], {"pending_done": []})
        if self.rejected:
            listed = "; ".join(f"{r.name}: {r.reason}" for r in self.rejected)
            raise ConnectorError(f"{len(self.rejected)} lab message(s) could not be read and were set aside in "
                                 f"rejected/ (the lab had an ACK; ask them to correct and resend): {listed}")
