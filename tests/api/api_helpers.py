"""Helpers shared by the API tests."""

from __future__ import annotations

CANARY = "CANARY-7f3a9c1e-secret-never-echo"


def auth(token: str) -> dict[str, str]:
    """Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}
