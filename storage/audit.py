"""The audit log: every change and every view of personal data writes a row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from storage.models.users import AuditLog


def record_audit(session: Session, *, actor: str, action: str, entity_type: str = "", entity_id: str = "",
                 outcome: str = "ok", detail: dict[str, Any] | None = None) -> None:
    """Add an audit row to the session's transaction (it commits with the change it describes)."""
    session.add(AuditLog(actor=actor, action=action, entity_type=entity_type, entity_id=entity_id,
                         outcome=outcome, detail=detail or {}))


def recent_audit(session: Session, *, limit: int = 100, action: str | None = None) -> Sequence[AuditLog]:
    """The newest audit rows, optionally for one action."""
    query = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)
    if action:
        query = query.where(AuditLog.action == action)
    return session.exec(query).all()
