"""File exchange as a connector: the honest route for systems without an API (Sage 50 desktop, legacy care
systems, job-board exports, TaxCalc).

Connection settings name two folders: ``inbox_dir`` where exported vendor files are dropped (by a person,
an SFTP job or a Sage 50 scheduled export) and ``outbox_dir`` where CareHub writes files for the vendor's
import. Each stream names its layout (``params.layout``) and file pattern (``params.pattern``).

Reading takes new files only (by content hash, kept in the checkpoint), oldest first, one page per file.
A file that breaks its layout is imported not at all: it is moved to ``inbox_dir/rejected/``, listed in
:attr:`FileExchangeSession.rejected`, and once the good files' pages are through, the read raises
:class:`~connectors.files.codec.FileRejected` naming every problem by row, column and reason, so the run
shows it in the errors inbox.
Writing produces one file per call, named from the records' idempotency keys, written atomically;
a retried write finds the same file and reports success without writing it twice.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.auth import InMemoryTokenStore
from connectors.errors import ConnectorError
from connectors.files.atomic import write_atomically
from connectors.files.codec import FileIssue, FileRejected, parse_file, write_file
from connectors.files.layout import FileLayout, load_layout
from connectors.manifest import ConnectorManifest, ErrorRules, RateLimits, StreamSpec
from connectors.ratelimit import RateLimiter
from connectors.runtime import CallStats, ConnectionTest, ConnectorSession
from engine.ports import OutboundRecord, ReadPage, SourceRecord, WriteOutcome


class LocalSession(ConnectorSession):
    """A ConnectorSession that talks to the local file system, not HTTP (no client, no SSRF check)."""

    def __init__(self, manifest: ConnectorManifest, config: Mapping[str, Any], secrets: Mapping[str, Any], *,
                 connection_id: str, error_rules: ErrorRules | None = None, redis: Any = None,
                 rate_limits: RateLimits | None = None, **_ignored: Any) -> None:
        self.manifest = manifest
        self.config = dict(config)
        self.secrets = dict(secrets)
        self.connection_id = connection_id
        self.rules = error_rules or manifest.errors
        self.stats = CallStats()
        self.base_url = ""
        self.token_store = InMemoryTokenStore()
        # Kept so callers can treat every session alike (bucket and breaker keys); files are not throttled.
        self.limiter = RateLimiter(manifest.id, connection_id, rate_limits or manifest.rate_limits, redis=redis)

    async def aclose(self) -> None:
        """Nothing to close."""

    def _dir(self, key: str) -> Path:
        value = self.config.get(key)
        if not value:
            raise ConnectorError(f"the connection has no `{key}` folder set")
        return Path(str(value))

    def _inbox_files(self, pattern: str) -> list[Path]:
        """The inbox's files matching ``pattern`` (any case), oldest first."""
        inbox = self._dir("inbox_dir")
        if not inbox.is_dir():
            raise ConnectorError(f"the inbox folder {inbox} does not exist")
        files = [p for p in inbox.iterdir() if p.is_file() and fnmatch.fnmatch(p.name.lower(), pattern.lower())]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class RejectedFile:
    """A file that was not imported, with every problem found in it."""

    name: str
    issues: list[FileIssue] = field(default_factory=list)


def file_digest(data: bytes) -> str:
    """The SHA-256 of a file's bytes (how imported files are recognised again)."""
    return hashlib.sha256(data).hexdigest()


class FileExchangeSession(LocalSession):
    """Reads and writes vendor files in their documented layouts (see the module docstring)."""

    def __init__(self, *args: Any, layout_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layout_dir = layout_dir
        self.rejected: list[RejectedFile] = []

    def layout(self, stream: str) -> FileLayout:
        """The layout of a stream."""
        spec = self.stream(stream)
        return load_layout(spec.params.get("layout", stream), self.layout_dir)

    def _pattern(self, spec: StreamSpec, layout: FileLayout) -> str:
        return spec.params.get("pattern") or f"*.{layout.format}"

    def _candidates(self, spec: StreamSpec, layout: FileLayout) -> list[Path]:
        return self._inbox_files(self._pattern(spec, layout))

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """New files of the stream, oldest first, one page per file; rejected files import nothing."""
        spec = self.stream(stream)
        layout = self.layout(stream)
        imported: dict[str, str] = dict((checkpoint or {}).get("imported") or {})
        done = set(imported.values())
        self.rejected = []
        emitted = False
        for path in self._candidates(spec, layout):
            data = path.read_bytes()
            digest = file_digest(data)
            if digest in done:
                continue
            try:
                rows = parse_file(layout, data, path.name)
            except FileRejected as exc:
                self.rejected.append(RejectedFile(path.name, exc.issues))
                self._quarantine(path)
                continue
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            records = [SourceRecord(external_id=str(row[layout.primary_key]),
                                    data={**row, "_file": path.name, "_row": i + (2 if layout.header else 1)},
                                    updated_at=stamp) for i, row in enumerate(rows)]
            imported[path.name] = digest
            done.add(digest)
            emitted = True
            yield ReadPage(records, {"imported": dict(imported)})
        if not emitted:
            yield ReadPage([], {"imported": dict(imported)})
        if self.rejected:
            # Raised after the good files' pages, so they are stored; the run then reports the bad file
            # (already moved to ``rejected/``) with every row, column and reason.
            first = self.rejected[0]
            names = " and ".join(f.name for f in self.rejected)
            raise FileRejected(names, [i for f in self.rejected for i in f.issues] if len(self.rejected) > 1
                               else first.issues)

    def _quarantine(self, path: Path) -> None:
        target = path.parent / "rejected"
        target.mkdir(exist_ok=True)
        shutil.move(str(path), str(target / path.name))

    def check_file(self, stream: str, data: bytes, filename: str = "upload") -> list[dict[str, Any]]:
        """Validate an uploaded file against the stream's layout (raises FileRejected), importing nothing."""
        return parse_file(self.layout(stream), data, filename)

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """Write the records as one file in the vendor's layout into ``outbox_dir`` (atomic, idempotent)."""
        spec = self.stream(stream)
        if spec.write is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        layout = self.layout(stream)
        if not records:
            return []
        outbox = self._dir("outbox_dir")
        outbox.mkdir(parents=True, exist_ok=True)
        batch = file_digest("\n".join(r.idempotency_key for r in records).encode())[:12]
        prefix = spec.params.get("out_prefix", layout.id)
        target = outbox / f"{prefix}_{batch}.{layout.format}"
        keys = [str(r.payload.get(layout.primary_key, "")) for r in records]
        if target.exists():
            return [WriteOutcome(r.idempotency_key, True, external_id=k, data={"file": target.name, "duplicate": True})
                    for r, k in zip(records, keys, strict=True)]
        try:
            data = write_file(layout, [dict(r.payload) for r in records])
        except FileRejected as exc:
            by_row: dict[int, list[str]] = {}
            first = 2 if layout.header else 1
            for issue in exc.issues:
                by_row.setdefault(issue.row - first, []).append(f"{issue.column}: {issue.reason}")
            return [WriteOutcome(r.idempotency_key, False, error_code="layout",
                                 error_message="; ".join(by_row.get(i, ["another record in this file is invalid"])))
                    for i, r in enumerate(records)]
        write_atomically(target, data)
        return [WriteOutcome(r.idempotency_key, True, external_id=k, data={"file": target.name})
                for r, k in zip(records, keys, strict=True)]

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """The first rows of the newest valid file (nothing is moved or remembered)."""
        spec = self.stream(stream)
        layout = self.layout(stream)
        for path in reversed(self._candidates(spec, layout)):
            try:
                rows = parse_file(layout, path.read_bytes(), path.name)
            except FileRejected:
                continue
            return [SourceRecord(external_id=str(r[layout.primary_key]), data=r) for r in rows[:n]]
        return []

    async def test_connection(self) -> ConnectionTest:
        """The folders exist and are usable; say how many files are waiting."""
        try:
            inbox = self._dir("inbox_dir")
            if not inbox.is_dir():
                return ConnectionTest(False, f"The inbox folder {inbox} does not exist.")
            waiting = sum(len(self._candidates(s, self.layout(name))) for name, s in self.manifest.streams.items())
            if "outbox_dir" in self.config:
                out = self._dir("outbox_dir")
                out.mkdir(parents=True, exist_ok=True)
                if not os.access(out, os.W_OK):
                    return ConnectionTest(False, f"CareHub cannot write to the outbox folder {out}.")
        except ConnectorError as exc:
            return ConnectionTest(False, str(exc))
        return ConnectionTest(True, f"Folders ready: {waiting} file(s) waiting to import.", {"waiting": waiting})
