"""Schemathesis hooks for the API run: a check that the canary secret never appears in any response."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

CANARY = os.environ.get("CAREHUB_CANARY", "CANARY-7f3a9c1e-secret-never-echo")


@schemathesis.check
def canary_never_echoed(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail if the canary secret is in the body or any header of a response."""
    log = os.environ.get("CAREHUB_CANARY_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write("x")
    text = response.content.decode("utf-8", "replace") if response.content else ""
    headers = " ".join(f"{k}: {v}" for k, v in response.headers.items())
    if CANARY in text or CANARY in headers:
        raise AssertionError(f"the canary secret was echoed by {case.method} {case.path}")
    return None
