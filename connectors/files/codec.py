"""Read and write vendor files (CSV, XLSX) in a :class:`~connectors.files.layout.FileLayout`.

Reading is all-or-nothing: the whole file is checked (headers, column counts, every cell's type, format,
length and allowed values, required cells, duplicate keys) and either every row comes back as a typed
record or :class:`FileRejected` lists every problem by row, column and reason, and nothing is imported.
Row numbers are the ones a person sees in Excel or a text editor (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook

from connectors.errors import ConnectorError
from connectors.files.layout import Column, FileLayout

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")


@dataclass(frozen=True)
class FileIssue:
    """One problem in a file: where (row, column) and why, with the offending value."""

    row: int
    column: str
    reason: str
    value: str = ""

    def __str__(self) -> str:
        shown = f" (found {self.value!r})" if self.value else ""
        return f"row {self.row}, column {self.column!r}: {self.reason}{shown}"


class FileRejected(ConnectorError):
    """The file breaks its layout; nothing from it was imported. ``issues`` lists every problem."""

    def __init__(self, filename: str, issues: list[FileIssue]) -> None:
        self.filename = filename
        self.issues = issues
        head = "; ".join(str(i) for i in issues[:5])
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"{filename} was not imported: {len(issues)} problem(s): {head}{more}")


def nhs_number_valid(digits: str) -> bool:
    """Modulus-11 check of a 10-digit NHS number."""
    if not re.fullmatch(r"\d{10}", digits):
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _norm_header(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _fmt(layout: FileLayout, col: Column) -> str:
    return col.date_format or layout.date_format


def convert(layout: FileLayout, col: Column, raw: Any) -> tuple[Any, str | None]:
    """A cell as a typed value, or an error reason. Empty cells are ``None``."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None, ("a value is required" if col.required else None)
    text = raw.strip() if isinstance(raw, str) else raw
    kind = col.type
    value: Any
    if kind in ("date", "datetime"):
        if isinstance(text, datetime):
            value = text.date().isoformat() if kind == "date" else text.isoformat()
        elif isinstance(text, date):
            value = text.isoformat()
        else:
            try:
                parsed = datetime.strptime(str(text), _fmt(layout, col))
            except ValueError:
                return None, f"not a date in the format {_human_format(_fmt(layout, col))}"
            value = parsed.date().isoformat() if kind == "date" else parsed.isoformat()
    elif kind == "integer":
        try:
            value = int(str(text).replace(",", "")) if not isinstance(text, int | float) else int(text)
            if isinstance(text, float) and text != int(text):
                raise ValueError
        except ValueError:
            return None, "not a whole number"
    elif kind == "decimal":
        try:
            value = float(str(text).replace(",", "").replace("£", "")) if not isinstance(text, int | float) \
                else float(text)
        except ValueError:
            return None, "not a number"
        places = col.decimals if col.decimals is not None else 2
        if round(value, places) != value:
            return None, f"has more than {places} decimal places"
    elif kind == "boolean":
        yes, no = layout.boolean_values
        t = str(text).strip().casefold()
        if t in (yes.casefold(), "true", "yes", "1"):
            value = True
        elif t in (no.casefold(), "false", "no", "0"):
            value = False
        else:
            return None, f"must be {yes} or {no}"
    elif kind == "nhs_number":
        digits = re.sub(r"[\s-]", "", str(text))
        if not nhs_number_valid(digits):
            return None, "not a valid NHS number (10 digits with a correct check digit)"
        value = digits
    elif kind == "postcode":
        m = _POSTCODE.match(re.sub(r"\s+", " ", str(text).upper()).strip())
        if not m:
            return None, "not a UK postcode"
        value = f"{m.group(1)} {m.group(2)}"
    elif kind == "email":
        if not _EMAIL.match(str(text)):
            return None, "not an e-mail address"
        value = str(text)
    elif kind == "phone":
        as_text = str(text)
        if not _PHONE.match(as_text):
            return None, "not a phone number"
        value = as_text
    else:
        value = str(int(text)) if isinstance(text, float) and text == int(text) else str(text)
    if isinstance(value, str):
        if col.max_length is not None and len(value) > col.max_length:
            return None, f"longer than {col.max_length} characters"
        if col.pattern and not re.fullmatch(col.pattern, value):
            return None, f"does not match the required pattern {col.pattern}"
        if col.allowed is not None and value not in col.allowed:
            return None, f"must be one of {', '.join(col.allowed)}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if col.min_value is not None and value < col.min_value:
            return None, f"must be at least {col.min_value:g}"
        if col.max_value is not None and value > col.max_value:
            return None, f"must be at most {col.max_value:g}"
    return value, None


def _human_format(fmt: str) -> str:
    return fmt.replace("%d", "DD").replace("%m", "MM").replace("%Y", "YYYY").replace("%H", "hh") \
        .replace("%M", "mm").replace("%S", "ss")


def _rows_csv(layout: FileLayout, data: bytes, issues: list[FileIssue]) -> list[tuple[int, list[Any]]]:
    try:
        text = data.decode(layout.encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        issues.append(FileIssue(0, "-", f"the file is not {layout.encoding} text: {exc}"))
        return []
    text = text.removeprefix("\ufeff")
    rows: list[tuple[int, list[Any]]] = []
    try:
        for n, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter), start=1):
            rows.append((n, row))
    except csv.Error as exc:
        issues.append(FileIssue(len(rows) + 1, "-", f"broken CSV: {exc}"))
    return rows


def _rows_xlsx(layout: FileLayout, data: bytes, issues: list[FileIssue]) -> list[tuple[int, list[Any]]]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        issues.append(FileIssue(0, "-", f"not an Excel .xlsx workbook: {exc}"))
        return []
    try:
        if layout.sheet:
            if layout.sheet not in wb.sheetnames:
                issues.append(FileIssue(0, "-", f"no sheet named {layout.sheet!r}; sheets: {', '.join(wb.sheetnames)}"))
                return []
            ws = wb[layout.sheet]
        else:
            ws = wb.worksheets[0]
        return [(n, list(row)) for n, row in enumerate(ws.iter_rows(values_only=True), start=1)]
    finally:
        wb.close()


def parse_file(layout: FileLayout, data: bytes, filename: str = "file", *,
               unique: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Every row as ``{column name: typed value}``; raise :class:`FileRejected` on any problem.

    ``unique`` names the columns whose values together must not repeat (the primary key by default; a file
    with one row per invoice line passes invoice number and line number).
    """
    issues: list[FileIssue] = []
    rows = _rows_csv(layout, data, issues) if layout.format == "csv" else _rows_xlsx(layout, data, issues)
    if issues:
        raise FileRejected(filename, issues)
    rows = [(n, r) for n, r in rows if any(c is not None and str(c).strip() != "" for c in r)]
    cols = layout.columns
    if layout.header:
        if not rows:
            raise FileRejected(filename, [FileIssue(1, "-", "the file is empty: the header row is missing")])
        n, head = rows[0]
        rows = rows[1:]
        for i, col in enumerate(cols):
            found = head[i] if i < len(head) else None
            if found is None or _norm_header(str(found)) != _norm_header(col.header):
                issues.append(FileIssue(n, col.header, f"header should be {col.header!r}",
                                        "" if found is None else str(found)))
        for extra in head[len(cols):]:
            if extra is not None and str(extra).strip():
                issues.append(FileIssue(n, str(extra), "this column is not in the layout"))
        if issues:
            raise FileRejected(filename, issues)
    records: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for n, row in rows:
        cells = list(row)
        while len(cells) > len(cols) and (cells[-1] is None or str(cells[-1]).strip() == ""):
            cells.pop()
        if len(cells) != len(cols) and layout.format == "csv":
            issues.append(FileIssue(n, "-", f"expected {len(cols)} columns, found {len(cells)}"))
            continue
        rec: dict[str, Any] = {}
        for i, col in enumerate(cols):
            raw = cells[i] if i < len(cells) else None
            value, err = convert(layout, col, raw)
            if err:
                issues.append(FileIssue(n, col.header, err, "" if raw is None else str(raw)))
            rec[col.name] = value
        key_columns = unique or (layout.primary_key,)
        parts = tuple(rec.get(c) for c in key_columns)
        key = parts[0] if len(parts) == 1 else (None if None in parts else parts)
        if key is not None:
            if key in seen:
                issues.append(FileIssue(n, layout.column(key_columns[-1]).header,
                                        f"duplicate of row {seen[key]}", ", ".join(str(p) for p in parts)))
            else:
                seen[key] = n
        records.append(rec)
    if issues:
        raise FileRejected(filename, issues)
    return records


def _out(layout: FileLayout, col: Column, value: Any) -> Any:
    """A typed value as the vendor writes it (CSV text)."""
    if value is None:
        return ""
    if col.type in ("date", "datetime"):
        dt = value if isinstance(value, date) else datetime.fromisoformat(str(value))
        return dt.strftime(_fmt(layout, col))
    if col.type == "decimal":
        return f"{float(value):.{col.decimals if col.decimals is not None else 2}f}"
    if col.type == "boolean":
        return layout.boolean_values[0] if value else layout.boolean_values[1]
    return str(value)


def write_file(layout: FileLayout, records: list[dict[str, Any]]) -> bytes:
    """Records (``{column name: value}``) as a file in the layout; checks every value first.

    Raises :class:`FileRejected` (row numbers as they would appear in the written file) when a record
    does not fit the layout, so a bad export never reaches the vendor.
    """
    issues: list[FileIssue] = []
    first = 2 if layout.header else 1
    for k, rec in enumerate(records):
        for col in layout.columns:
            _value, err = convert(layout, col, _out(layout, col, rec.get(col.name)))
            if err:
                issues.append(FileIssue(first + k, col.header, err, str(rec.get(col.name) or "")))
    if issues:
        raise FileRejected("export", issues)
    if layout.format == "csv":
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, delimiter=layout.delimiter, lineterminator=layout.line_terminator)
        if layout.header:
            writer.writerow([c.header for c in layout.columns])
        for rec in records:
            writer.writerow([_out(layout, c, rec.get(c.name)) for c in layout.columns])
        return buf.getvalue().encode(layout.encoding)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = layout.sheet or "Sheet1"
    if layout.header:
        ws.append([c.header for c in layout.columns])
    for rec in records:
        row: list[Any] = []
        for c in layout.columns:
            v = rec.get(c.name)
            if v is not None and c.type == "date":
                v = date.fromisoformat(str(v))
            elif v is not None and c.type == "datetime":
                v = datetime.fromisoformat(str(v))
            elif v is not None and c.type == "boolean":
                v = layout.boolean_values[0] if v else layout.boolean_values[1]
            row.append(v)
        ws.append(row)
        for cell, c in zip(ws[ws.max_row], layout.columns, strict=True):
            if c.type == "date":
                cell.number_format = "DD/MM/YYYY"
            elif c.type == "decimal":
                cell.number_format = "0.00"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
