"""Webhook management endpoints: outbound subscribers (Standard Webhooks signed) and inbound receivers."""

from __future__ import annotations

import socket
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, Path, Response

from app.api.convert import etag, parse_if_match, webhook_out
from app.api.deps import ApiUser, context
from app.api.examples import ok
from app.api.integrations import COMMON, ETAG_HEADER, IfMatch, IntegrationId, Limit, Offset
from app.api.problems import ProblemError, problem_responses
from app.api.roles import owned_integration
from app.api.schemas import PageOut, WebhookIn, WebhookOut, WebhookUpdate
from app.context import AppContext
from connectors.errors import OutboundBlocked
from connectors.ssrf import check_outbound_url
from storage import integrations as svc
from storage.integrations import FieldProblem
from storage.models import Integration

router = APIRouter(tags=["webhooks"])
WebhookId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                                examples=["9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"])]


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse webhook targets in loopback, private, link-local or metadata ranges: IP literals in any form
    (decimal, hex, octal, IPv6-mapped) and internal names are refused here; names that need DNS are checked
    again, resolved and pinned, at every delivery (so DNS rebinding cannot slip through)."""
    if not url:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    reason = ""
    if parts.scheme not in ("http", "https") or not host:
        reason = "the URL needs an http(s) scheme and a host"
    elif _is_literal(host):
        try:
            check_outbound_url(url, allow_private=allow_private)  # a literal needs no DNS
        except OutboundBlocked as exc:
            reason = str(exc)
    elif not allow_private and (host == "localhost" or host.endswith(INTERNAL_SUFFIXES) or "." not in host):
        reason = f"{host} is an internal host name"
    if reason:
        raise ProblemError(422, f"Webhook target refused: {reason}", errors=[FieldProblem("url", reason)])


INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")


def _is_literal(host: str) -> bool:
    h = host.strip("[]")
    if ":" in h:
        return True
    try:
        socket.inet_aton(h)
    except OSError:
        return False
    return True


def _public_url(ctx: AppContext) -> str:
    return f"http://{ctx.settings.host}:{ctx.settings.port}"


@router.post("/integrations/{integrationId}/webhooks", operation_id="createWebhook", status_code=201,
             summary="Add a webhook", response_model=WebhookOut,
             responses={**COMMON, **problem_responses(400, 409, 413), **ok("createWebhook", 201, ETAG_HEADER)})
def create(integrationId: IntegrationId, body: WebhookIn, response: Response,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("createWebhook"))],
           ctx: Annotated[AppContext, Depends(context)],
           _key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None) -> WebhookOut:
    """Outbound: CareHub POSTs the chosen events to ``url``, signed per Standard Webhooks with the secret
    (generated and shown once in this response if you send none). Inbound: the answer's ``receiverUrl`` is
    where the vendor sends its events, verified with the vendor's scheme and ``secret``."""
    user, integration = access
    if body.direction == "outbound":
        if not body.url:
            raise ProblemError(422, "An outbound webhook needs a URL.", errors=[FieldProblem("url", "required")])
        check_target(body.url, allow_private=ctx.settings.allow_private_hosts)
    with ctx.db.session() as session:
        hook, generated = svc.create_webhook(
            session, box=ctx.box, actor=user.email, integration_id=integration.id, url=body.url,
            events=[e.value for e in body.events], direction=body.direction, secret=body.secret,
            description=body.description, active=body.active)
    response.headers["ETag"] = etag("webhook", hook.id, hook.revision)
    return webhook_out(hook, public_url=_public_url(ctx), signing_secret=generated)


@router.get("/integrations/{integrationId}/webhooks", operation_id="listWebhooks", summary="List webhooks",
            response_model=PageOut[WebhookOut], responses={**COMMON, **ok("listWebhooks")})
def list_hooks(integrationId: IntegrationId,
               access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("listWebhooks"))],
               ctx: Annotated[AppContext, Depends(context)], offset: Offset = 0,
               limit: Limit = 50) -> PageOut[WebhookOut]:
    """The integration's webhooks; secrets are never shown (``secretSet``)."""
    with ctx.db.session() as session:
        page = svc.list_webhooks(session, integration_id=access[1].id, offset=offset, limit=limit)
    return PageOut[WebhookOut](items=[webhook_out(h, public_url=_public_url(ctx)) for h in page.items],
                               total=page.total, offset=offset, limit=limit)


@router.put("/integrations/{integrationId}/webhooks/{webhookId}", operation_id="updateWebhook",
            summary="Change a webhook", response_model=WebhookOut,
            responses={**COMMON, **problem_responses(400, 412, 413), **ok("updateWebhook", 200, ETAG_HEADER)})
def update(integrationId: IntegrationId, webhookId: WebhookId, body: WebhookUpdate,
           response: Response,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("updateWebhook"))],
           ctx: Annotated[AppContext, Depends(context)], if_match: IfMatch = None) -> WebhookOut:
    """Change URL, events, secret, description or active state (re-activating clears the disabled reason)."""
    user, integration = access
    expected = parse_if_match(if_match, "webhook", webhookId)
    if expected == -1:
        raise ProblemError(412, "If-Match does not name a revision of this webhook.")
    with ctx.db.session() as session:
        hook = svc.get_webhook(session, webhook_id=webhookId, integration_id=integration.id)
        if body.url and hook.direction == "outbound":
            check_target(body.url, allow_private=ctx.settings.allow_private_hosts)
        hook = svc.update_webhook(
            session, box=ctx.box, actor=user.email, integration_id=integration.id, webhook_id=webhookId,
            expected_revision=expected, url=body.url,
            events=[e.value for e in body.events] if body.events is not None else None, secret=body.secret,
            description=body.description, active=body.active)
    response.headers["ETag"] = etag("webhook", hook.id, hook.revision)
    return webhook_out(hook, public_url=_public_url(ctx))


@router.delete("/integrations/{integrationId}/webhooks/{webhookId}", operation_id="deleteWebhook",
               status_code=204, summary="Remove a webhook", responses={**COMMON, 204: {"description": "Deleted"}})
def delete(integrationId: IntegrationId, webhookId: WebhookId,
           access: Annotated[tuple[ApiUser, Integration], Depends(owned_integration("deleteWebhook"))],
           ctx: Annotated[AppContext, Depends(context)]) -> Response:
    """Stop the webhook at once (soft delete; its delivery log stays)."""
    user, integration = access
    with ctx.db.session() as session:
        svc.delete_webhook(session, actor=user.email, integration_id=integration.id, webhook_id=webhookId)
    return Response(status_code=204)
