"""Encryption round trip and key rotation, including a rotation interrupted half way."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlmodel import select

from storage.crypto import SecretBox, SecretError, mask
from storage.models import AuditLog, Integration, Webhook
from storage.secrets import rotate_all


def test_round_trip() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    token = box.encrypt({"api_key": "canary-123", "nested": {"a": 1}})
    assert "canary-123" not in token
    assert box.decrypt(token) == {"api_key": "canary-123", "nested": {"a": 1}}
    assert box.decrypt("") == {}


def test_unknown_key_gives_clear_error() -> None:
    token = SecretBox([Fernet.generate_key().decode()]).encrypt({"x": 1})
    with pytest.raises(SecretError, match="cannot be decrypted"):
        SecretBox([Fernet.generate_key().decode()]).decrypt(token)


def test_mask() -> None:
    assert mask("9434765919") == "94******19"
    assert mask("abc") == "***"


class Interrupt(Exception):
    pass


def test_rotation_interrupted_then_rerun(db: object) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old_box = SecretBox([old])
    with db.session() as session:  # type: ignore[attr-defined]
        for i in range(6):
            integ = Integration(name=f"i{i}", connector_id="xero",
                                credentials_encrypted=old_box.encrypt({"secret": f"s{i}"}))
            session.add(integ)
            session.flush()
            session.add(Webhook(integration_id=integ.id, url="https://example.org/h",
                                secret_encrypted=old_box.encrypt({"secret": f"w{i}"})))
    rotating = SecretBox([new, old])
    seen: list[str] = []

    def interrupt_after_three(row_id: str) -> None:
        seen.append(row_id)
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        rotate_all(db, rotating, on_row=interrupt_after_three)  # type: ignore[arg-type]
    report = rotate_all(db, rotating)  # type: ignore[arg-type]
    assert report.rotated == 9 and report.already_current == 3
    again = rotate_all(db, rotating)  # type: ignore[arg-type]
    assert again.rotated == 0 and again.already_current == 12
    new_only = SecretBox([new])
    with db.session() as session:  # type: ignore[attr-defined]
        secrets = sorted(new_only.decrypt(r.credentials_encrypted)["secret"]
                         for r in session.exec(select(Integration)).all())
        assert secrets == [f"s{i}" for i in range(6)]
        assert all(new_only.decrypt(w.secret_encrypted) for w in session.exec(select(Webhook)).all())
        audits = session.exec(select(AuditLog).where(AuditLog.action == "secret.rotate")).all()
        assert len(audits) == 12
