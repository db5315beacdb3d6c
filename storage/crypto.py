"""Credentials at rest: MultiFernet encryption with key rotation.

Keys are given newest first. Encryption always uses the newest key; decryption tries
each. Rotation re-encrypts one row per transaction, so an interrupted rotation can be
re-run safely: rows already rotated decrypt with the new key, the rest with the old.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretError(RuntimeError):
    """A stored secret could not be decrypted with any configured key."""


class SecretBox:
    """Encrypts and decrypts credential blobs with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self._primary = Fernet(keys[0].encode())

    def encrypt(self, value: Mapping[str, Any]) -> str:
        """Encrypt a JSON-able mapping under the newest key."""
        return self._fernet.encrypt(json.dumps(dict(value), sort_keys=True).encode()).decode()

    def decrypt(self, token: str | None) -> dict[str, Any]:
        """Decrypt a token made by :meth:`encrypt`; empty input gives an empty dict."""
        if not token:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise SecretError(
                "A stored credential cannot be decrypted with any key in CAREHUB_SECRET_KEYS: "
                "the key that encrypted it was removed before `carehub secrets rotate` finished."
            ) from exc
        if not isinstance(data, dict):
            raise SecretError("A stored credential is not a JSON object")
        return data

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        return self._fernet.rotate(token.encode()).decode()

    def is_current(self, token: str) -> bool:
        """True when ``token`` is already encrypted under the newest key."""
        try:
            self._primary.decrypt(token.encode())
        except InvalidToken:
            return False
        return True


def mask(value: str | None, keep: int = 2) -> str:
    """Mask a secret or personal value for display: ``9*******76``."""
    if not value:
        return ""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - keep * 2) + value[-keep:]
