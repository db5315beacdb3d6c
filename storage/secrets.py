"""Re-encrypting every stored secret under the newest key (``carehub secrets rotate``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import select

from storage.audit import record_audit
from storage.crypto import SecretBox
from storage.db import Database
from storage.models import Integration, Webhook


@dataclass(slots=True)
class RotationReport:
    """How many secrets were rotated and how many were already current."""

    rotated: int = 0
    already_current: int = 0


# (model, primary key attribute, encrypted column)
ENCRYPTED_COLUMNS: list[tuple[type[Integration] | type[Webhook], str]] = [
    (Integration, "credentials_encrypted"),
    (Webhook, "secret_encrypted"),
]


def rotate_all(db: Database, box: SecretBox, *, on_row: Callable[[str], None] | None = None) -> RotationReport:
    """Re-encrypt every secret under the newest key, one row per transaction.

    Safe to interrupt and re-run: a row is either still under an old key (decryptable
    because the old key stays configured until rotation finishes) or already rotated.
    """
    report = RotationReport()
    for model, column in ENCRYPTED_COLUMNS:
        with db.session() as session:
            ids = [str(row_id) for row_id in session.exec(select(model.id).where(getattr(model, column) != "")).all()]
        for row_id in ids:
            with db.session() as session:
                row = session.get(model, row_id)
                token = getattr(row, column) if row is not None else ""
                if row is None or not token:
                    continue
                if box.is_current(token):
                    report.already_current += 1
                    continue
                setattr(row, column, box.rotate(token))
                session.add(row)
                record_audit(session, actor="system", action="secret.rotate", entity_type=model.__tablename__,
                             entity_id=str(row_id))
                report.rotated += 1
            if on_row is not None:
                on_row(str(row_id))
    return report
