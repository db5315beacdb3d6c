"""Schemathesis hooks for the API run: a check that the canary secret never appears in any response."""

from __future__ import annotations

import os
import uuid
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


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """A fresh ``Idempotency-Key`` for every stateful call.

    Schemathesis reuses the documented example key across calls, and a repeated key rightly replays the first
    reply (a webhook deleted since would then look "created but not found" to its stateful checks).
    """
    phase = getattr(getattr(getattr(case, "meta", None), "phase", None), "name", "")
    if "stateful" not in str(phase).lower():  # the other phases check header handling itself: leave them be
        return
    for name, value in list((case.headers or {}).items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and value:
            case.headers[name] = uuid.uuid4().hex
