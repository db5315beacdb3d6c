"""Steps the sandboxes' request handlers share (kept apart from ``common.py``, which others depend on).

:func:`client_credentials`: the client id and secret of an OAuth token request (Basic header or form).

:func:`record_to_update`: the opening of an update handler, "refused? → the record → 404 → the body as JSON →
400", in the vendor's own words; the handler goes on with the record and the body.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response

ErrorReply = Callable[[int, str], Response]
Denied = Callable[[Request], Response | None]


async def record_to_update(request: Request, *, denied: Denied, error: ErrorReply,
                           find: Callable[[Any], dict[str, Any] | None], not_found: str, bad_json: str,
                           not_object: str | None = None,
                           body_first: bool = False) -> Response | tuple[dict[str, Any], Any]:
    """The record an update names and the request's body, or the vendor's refusal.

    ``denied(request)`` answers an unauthorised call; ``find(body)`` looks the record up (``body`` is None unless
    ``body_first``: vendors that name the record in the body, like Cin7, read the body before looking it up);
    ``error(status, message)`` words the 404 (``not_found``) and the 400s (``bad_json``; ``not_object`` when
    the body must be a JSON object).
    """
    if (refused := denied(request)) is not None:
        return refused
    current = None if body_first else find(None)
    if current is None and not body_first:
        return error(404, not_found)
    try:
        body = await request.json()
    except ValueError:
        return error(400, bad_json)
    if not_object is not None and not isinstance(body, dict):
        return error(400, not_object)
    if body_first:
        current = find(body)
        if current is None:
            return error(404, not_found)
    assert current is not None
    return current, body


def basic_auth(request: Request) -> tuple[str, str]:
    """The user and password of an HTTP Basic ``Authorization`` header; empty when absent or unreadable."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return user, password


def client_credentials(form: Mapping[str, Any], request: Request) -> tuple[str, str]:
    """The OAuth client id and secret of a token request: HTTP Basic when sent, else the form fields.

    An unreadable Basic header gives empty credentials (the token endpoint then refuses the client).
    """
    if request.headers.get("authorization", "").lower().startswith("basic "):
        return basic_auth(request)
    return str(form.get("client_id", "")), str(form.get("client_secret", ""))
