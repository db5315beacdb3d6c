"""Whole-file checks a layout's cells alone cannot express: a trial balance must balance.

A stream declares them in its params: ``balance: debit=credit`` (the two columns' totals must be equal) and
``one_of: debit,credit`` (every row fills exactly one of the columns). Problems come back as
:class:`~connectors.files.codec.FileIssue` by row and column like every other file problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.errors import ConnectorError
from connectors.files.codec import FileIssue
from connectors.files.layout import FileLayout

_CENT = 0.005


@dataclass(frozen=True)
class FileChecks:
    """The whole-file checks of one stream."""

    balance: tuple[str, str] | None = None  # (debit column, credit column): their totals must be equal
    one_of: tuple[str, ...] = ()  # every row fills exactly one of these columns

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> FileChecks | None:
        """The checks a stream declares, or None when it declares none."""
        balance = None
        if params.get("balance"):
            left, _, right = params["balance"].partition("=")
            balance = (left.strip(), right.strip())
        one_of = tuple(c.strip() for c in (params.get("one_of") or "").split(",") if c.strip())
        if balance is None and not one_of:
            return None
        return cls(balance=balance, one_of=one_of)

    def _check_columns(self, layout: FileLayout) -> None:
        names = {c.name for c in layout.columns}
        missing = sorted({*(self.balance or ()), *self.one_of} - names)
        if missing:
            raise ConnectorError(f"layout {layout.id} has no column(s) {', '.join(missing)} named by its checks")

    def row_issues(self, layout: FileLayout, rows: Sequence[Mapping[str, Any]], first_row: int = 2) -> list[FileIssue]:
        """Problems of single rows (``first_row`` is the file row number of ``rows[0]``)."""
        self._check_columns(layout)
        found: list[FileIssue] = []
        if self.one_of:
            headers = " or ".join(layout.column(c).header for c in self.one_of)
            for i, row in enumerate(rows):
                filled = [c for c in self.one_of if row.get(c) not in (None, "")]
                if len(filled) != 1:
                    column = layout.column(filled[-1] if filled else self.one_of[0]).header
                    word = "both" if len(filled) > 1 else "neither"
                    found.append(FileIssue(first_row + i, column, f"fill exactly one of {headers} ({word} given)"))
        return found

    def total_issues(self, layout: FileLayout, rows: Sequence[Mapping[str, Any]], first_row: int = 2) -> list[FileIssue]:
        """Problems of the file as a whole, reported on its last row (where a reader looks for totals)."""
        self._check_columns(layout)
        if not self.balance or not rows:
            return []
        debit, credit = self.balance
        left = round(sum(float(r.get(debit) or 0) for r in rows), 2)
        right = round(sum(float(r.get(credit) or 0) for r in rows), 2)
        if abs(left - right) <= _CENT:
            return []
        return [FileIssue(first_row + len(rows) - 1, layout.column(credit).header,
                          f"the file does not balance: {layout.column(debit).header} totals {left:.2f}, "
                          f"{layout.column(credit).header} totals {right:.2f}")]

    def issues(self, layout: FileLayout, rows: Sequence[Mapping[str, Any]], first_row: int = 2) -> list[FileIssue]:
        """Every problem in ``rows``, row problems first."""
        return self.row_issues(layout, rows, first_row) + self.total_issues(layout, rows, first_row)
