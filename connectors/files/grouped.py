"""Files with one row per line of a document (invoice lines, purchase-order lines), grouped by document.

Billing and inventory systems without an API export and import invoices and orders as flat files: every
line is a row and the document's own fields (number, dates, customer, totals) repeat on each of its rows.
A :class:`Grouping` says which column names the document, which numbers its lines and which columns belong
to a line; :func:`parse_grouped` turns such a file into one record per document with a ``lines`` list, and
:func:`write_grouped` writes records back the same way.

Reading stays all-or-nothing: beyond the layout's own checks (types, formats, required cells), a line
number may not repeat within a document, the document's fields must agree on every one of its rows, and
declared totals (e.g. invoice net = the sum of its line nets) must add up; every problem is reported by
row, column and reason and nothing is imported.

:class:`GroupedFileExchangeSession` is the folder session for connectors whose streams declare a grouping
(``params.group_by``, ``params.line_key``, ``params.line_columns``, optional ``params.totals``); streams
without one behave exactly as in :class:`~connectors.files.session.FileExchangeSession`. It also applies a
stream's whole-file checks (:mod:`connectors.files.checks`, e.g. a trial balance must balance) on reading and
before writing, reads a stream's files as CSV or XLSX by their extension, and writes XLSX when the connection
sets ``file_format: xlsx``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from connectors.files.atomic import write_atomically
from connectors.files.checks import FileChecks
from connectors.files.codec import FileIssue, FileRejected, parse_file, write_file
from connectors.files.layout import FileLayout
from connectors.files.session import FileExchangeSession, RejectedFile, file_digest
from engine.ports import OutboundRecord, ReadPage, SourceRecord, WriteOutcome

_CENT = 0.005


@dataclass(frozen=True)
class Grouping:
    """How a flat file's rows make up documents."""

    group_by: str  # the column naming the document (invoice number, order number)
    line_key: str  # the column numbering the lines within a document
    line_columns: tuple[str, ...]  # columns that describe a line; every other column describes the document
    lines_field: str = "lines"
    totals: tuple[tuple[str, str], ...] = ()  # (document column, line column): the document value is the sum
    balances: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (document column, its parts): e.g. total = net + vat

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Grouping | None:
        """The grouping a stream declares in its params, or None for a one-record-per-row stream."""
        if not params.get("group_by"):
            return None
        totals: list[tuple[str, str]] = []
        for pair in (params.get("totals") or "").split(","):
            if pair.strip():
                doc, _, line = pair.partition("=")
                totals.append((doc.strip(), line.strip()))
        balances: list[tuple[str, tuple[str, ...]]] = []
        for pair in (params.get("balances") or "").split(","):
            if pair.strip():
                doc, _, parts = pair.partition("=")
                balances.append((doc.strip(), tuple(p.strip() for p in parts.split("+") if p.strip())))
        return cls(group_by=params["group_by"], line_key=params.get("line_key", "line_number"),
                   line_columns=tuple(c.strip() for c in params.get("line_columns", "").split(",") if c.strip()),
                   lines_field=params.get("lines_field", "lines"), totals=tuple(totals), balances=tuple(balances))

    def check(self, layout: FileLayout) -> None:
        """Every column named here is in the layout (ConnectorError otherwise)."""
        names = {c.name for c in layout.columns}
        wanted = {self.group_by, self.line_key, *self.line_columns, *(c for pair in self.totals for c in pair),
                  *(c for doc, parts in self.balances for c in (doc, *parts))}
        missing = sorted(wanted - names)
        if missing:
            raise ConnectorError(f"layout {layout.id} has no column(s) {', '.join(missing)} named by its grouping")
        if self.line_key not in self.line_columns or self.group_by in self.line_columns:
            raise ConnectorError(f"layout {layout.id}: the line key must be a line column and the document "
                                 "column must not be")

    def document_columns(self, layout: FileLayout) -> list[str]:
        """The columns that describe the document, in file order."""
        return [c.name for c in layout.columns if c.name not in self.line_columns]


def group_rows(layout: FileLayout, grouping: Grouping, rows: Sequence[Mapping[str, Any]], filename: str = "file",
               first_row: int = 2) -> list[dict[str, Any]]:
    """Rows (as :func:`parse_file` returns them, in file order) as one record per document.

    Each record holds the document columns, ``_rows`` (the file rows it came from) and the lines under
    ``grouping.lines_field``. Raises :class:`FileRejected` when a document's fields disagree between its rows
    or a declared total does not match its lines.
    """
    grouping.check(layout)
    header = grouping.document_columns(layout)
    issues: list[FileIssue] = []
    docs: dict[Any, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        n = first_row + i
        key = row.get(grouping.group_by)
        doc = docs.get(key)
        if doc is None:
            doc = {c: row.get(c) for c in header}
            doc["_rows"] = [n]
            doc[grouping.lines_field] = []
            docs[key] = doc
        else:
            for c in header:
                if row.get(c) != doc[c]:
                    issues.append(FileIssue(n, layout.column(c).header,
                                            f"differs from row {doc['_rows'][0]} of the same "
                                            f"{layout.column(grouping.group_by).header} {key}",
                                            "" if row.get(c) is None else str(row.get(c))))
            doc["_rows"].append(n)
        doc[grouping.lines_field].append({c: row.get(c) for c in grouping.line_columns})
    for key, doc in docs.items():
        for doc_col, line_col in grouping.totals:
            stated = doc.get(doc_col)
            if stated is None:
                continue
            added = round(sum(float(line.get(line_col) or 0) for line in doc[grouping.lines_field]), 2)
            if abs(added - float(stated)) > _CENT:
                issues.append(FileIssue(doc["_rows"][0], layout.column(doc_col).header,
                                        f"is {float(stated):.2f} but the lines of {key} add up to {added:.2f}",
                                        f"{float(stated):.2f}"))
        for doc_col, parts in grouping.balances:
            stated = doc.get(doc_col)
            if stated is None:
                continue
            added = round(sum(float(doc.get(p) or 0) for p in parts), 2)
            if abs(added - float(stated)) > _CENT:
                named = " + ".join(layout.column(p).header for p in parts)
                issues.append(FileIssue(doc["_rows"][0], layout.column(doc_col).header,
                                        f"is {float(stated):.2f} but {named} is {added:.2f}", str(stated)))
    if issues:
        raise FileRejected(filename, sorted(issues, key=lambda x: x.row))
    return list(docs.values())


def parse_grouped(layout: FileLayout, grouping: Grouping, data: bytes, filename: str = "file") -> list[dict[str, Any]]:
    """A file as one record per document (all-or-nothing, see the module docstring)."""
    rows = parse_file(layout, data, filename, unique=(grouping.group_by, grouping.line_key))
    return group_rows(layout, grouping, rows, filename, 2 if layout.header else 1)


def flatten(layout: FileLayout, grouping: Grouping, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Documents back to one row per line (a document without lines is one row with empty line cells)."""
    header = grouping.document_columns(layout)
    rows: list[dict[str, Any]] = []
    for rec in records:
        head = {c: rec.get(c) for c in header}
        lines = rec.get(grouping.lines_field) or [{}]
        for line in lines:
            rows.append({**head, **{c: line.get(c) for c in grouping.line_columns}})
    return rows


def write_grouped(layout: FileLayout, grouping: Grouping, records: Sequence[Mapping[str, Any]]) -> bytes:
    """Documents as a file in the layout, one row per line; raises FileRejected like :func:`write_file`.

    Totals are checked as on reading, so a document whose lines do not add up never reaches the vendor.
    """
    grouping.check(layout)
    rows = flatten(layout, grouping, records)
    data = write_file(layout, rows)
    group_rows(layout, grouping, rows, "export", 2 if layout.header else 1)
    return data


def layout_for(layout: FileLayout, name: str) -> FileLayout:
    """The layout as CSV or XLSX by the file name's extension (same columns, same checks)."""
    suffix = Path(name).suffix.lower()
    if suffix == ".xlsx" and layout.format != "xlsx":
        return layout.model_copy(update={"format": "xlsx"})
    if suffix == ".csv" and layout.format != "csv":
        return layout.model_copy(update={"format": "csv"})
    return layout


class GroupedFileExchangeSession(FileExchangeSession):
    """A folder session whose streams may group rows into documents (see the module docstring)."""

    def grouping(self, stream: str) -> Grouping | None:
        """The stream's grouping, if it declares one."""
        return Grouping.from_params(self.stream(stream).params)

    def checks(self, stream: str) -> FileChecks | None:
        """The stream's whole-file checks, if it declares any."""
        return FileChecks.from_params(self.stream(stream).params)

    def _parse(self, stream: str, layout: FileLayout, data: bytes, name: str) -> list[dict[str, Any]]:
        layout = layout_for(layout, name)
        grouping = self.grouping(stream)
        rows = parse_file(layout, data, name) if grouping is None else parse_grouped(layout, grouping, data, name)
        checks = self.checks(stream)
        if checks is not None:
            issues = checks.issues(layout, rows, 2 if layout.header else 1)
            if issues:
                raise FileRejected(name, issues)
        return rows

    async def read(self, stream: str, checkpoint: dict[str, Any] | None = None) -> AsyncIterator[ReadPage]:
        """New files of the stream, oldest first, one page per file; a document per record when grouped."""
        spec = self.stream(stream)
        layout = self.layout(stream)
        imported: dict[str, str] = dict((checkpoint or {}).get("imported") or {})
        done = set(imported.values())
        self.rejected = []
        emitted = False
        first = 2 if layout.header else 1
        for path in self._candidates(spec, layout):
            data = path.read_bytes()
            digest = file_digest(data)
            if digest in done:
                continue
            try:
                rows = self._parse(stream, layout, data, path.name)
            except FileRejected as exc:
                self.rejected.append(RejectedFile(path.name, exc.issues))
                self._quarantine(path)
                continue
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
            records = []
            for i, row in enumerate(rows):
                line = row.pop("_rows", [i + first])[0]
                records.append(SourceRecord(external_id=str(row[layout.primary_key]),
                                            data={**row, "_file": path.name, "_row": line}, updated_at=stamp))
            imported[path.name] = digest
            done.add(digest)
            emitted = True
            yield ReadPage(records, {"imported": dict(imported)})
        if not emitted:
            yield ReadPage([], {"imported": dict(imported)})
        if self.rejected:
            names = " and ".join(f.name for f in self.rejected)
            raise FileRejected(names, [i for f in self.rejected for i in f.issues])

    def check_file(self, stream: str, data: bytes, filename: str = "upload") -> list[dict[str, Any]]:
        """Validate an uploaded file against the stream's layout and grouping, importing nothing."""
        return self._parse(stream, self.layout(stream), data, filename)

    async def sample(self, stream: str, n: int = 10) -> list[SourceRecord]:
        """The first records of the newest valid file (nothing is moved or remembered)."""
        spec = self.stream(stream)
        layout = self.layout(stream)
        for path in reversed(self._candidates(spec, layout)):
            try:
                rows = self._parse(stream, layout, path.read_bytes(), path.name)
            except FileRejected:
                continue
            return [SourceRecord(external_id=str(r[layout.primary_key]),
                                 data={k: v for k, v in r.items() if k != "_rows"}) for r in rows[:n]]
        return []

    async def write(self, stream: str, records: Sequence[OutboundRecord]) -> list[WriteOutcome]:
        """One file per call in the vendor's layout (a document's lines as rows), atomic and idempotent."""
        grouping = self.grouping(stream)
        checks = self.checks(stream)
        spec = self.stream(stream)
        if grouping is None and checks is None and self.config.get("file_format", "csv") == "csv":
            return await super().write(stream, records)
        if spec.write is None:
            raise ConnectorError(f"{self.manifest.id}.{stream} is read-only")
        if not records:
            return []
        fmt = str(self.config.get("file_format") or "csv")
        if fmt not in ("csv", "xlsx"):
            raise ConnectorError(f"file_format must be csv or xlsx, not {fmt!r}")
        layout = self.layout(stream).model_copy(update={"format": fmt})
        outbox = self._dir("outbox_dir")
        outbox.mkdir(parents=True, exist_ok=True)
        batch = file_digest("\n".join(r.idempotency_key for r in records).encode())[:12]
        target = outbox / f"{spec.params.get('out_prefix', layout.id)}_{batch}.{fmt}"
        keys = [str(r.payload.get(layout.primary_key, "")) for r in records]
        if target.exists():
            return [WriteOutcome(r.idempotency_key, True, external_id=k, data={"file": target.name, "duplicate": True})
                    for r, k in zip(records, keys, strict=True)]
        payloads = [dict(r.payload) for r in records]
        # Which record each written row comes from, to give every record its own problems.
        owner = list(range(len(payloads))) if grouping is None else \
            [k for k, p in enumerate(payloads) for _ in (p.get(grouping.lines_field) or [{}])]
        first = 2 if layout.header else 1
        cell_problems: list[FileIssue] = []
        data = b""
        try:
            data = write_file(layout, payloads) if grouping is None else write_grouped(layout, grouping, payloads)
        except FileRejected as exc:
            cell_problems = exc.issues
        row_problems: list[FileIssue] = []
        file_problems: list[FileIssue] = []
        if checks is not None and grouping is None:
            row_problems = checks.row_issues(layout, payloads, first)
            file_problems = checks.total_issues(layout, payloads, first)
        if cell_problems or row_problems or file_problems:
            shared = [f"{i.column}: {i.reason}" for i in file_problems]  # a file-wide problem is every record's
            by_record: dict[int, list[str]] = {}
            for issue in cell_problems + row_problems:
                idx = issue.row - first
                if 0 <= idx < len(owner):
                    by_record.setdefault(owner[idx], []).append(f"row {issue.row}, {issue.column}: {issue.reason}")
            return [WriteOutcome(r.idempotency_key, False, error_code="layout",
                                 error_message="; ".join(by_record.get(i, []) + shared)
                                 or "another record in this file is invalid")
                    for i, r in enumerate(records)]
        write_atomically(target, data)
        return [WriteOutcome(r.idempotency_key, True, external_id=k, data={"file": target.name})
                for r, k in zip(records, keys, strict=True)]
