"""The web app: NiceGUI pages and the REST API on one FastAPI server."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from nicegui import app as nicegui_app
from nicegui import ui
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from app.api import api_mount
from app.context import AppContext, get_context
from app.webhooks_in import webhooks_app
from connectors.sandboxes import mount_sandboxes_lazily
from ui import services as ui_services
from ui.components import theme as ui_theme
from ui.pages import register_all

log = logging.getLogger("carehub.web")
PUBLIC_PREFIXES = ("/login", "/_nicegui", "/api/", "/sandbox", "/webhooks/", "/favicon", "/oauth/")


class AuthMiddleware(BaseHTTPMiddleware):
    """Send browsers without a session to the login page; the API authenticates by bearer token."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if not path.startswith(PUBLIC_PREFIXES) and not nicegui_app.storage.user.get("user"):
            return RedirectResponse(f"/login?redirect_to={path}")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def configure(ctx: AppContext | None = None) -> AppContext:
    """Wire services, pages, API routes and (in local mode) sandboxes onto the NiceGUI app.

    Called once per server start, and again by NiceGUI's test fixtures after each reset.
    """
    ctx = ctx or get_context()
    ui_services.configure(ui_services.Services(
        db=ctx.db, box=ctx.box, redis_url=ctx.redis_url, allow_private_hosts=ctx.settings.allow_private_hosts,
        sandboxes_enabled=ctx.settings.sandboxes_enabled,
        public_url=f"http://{ctx.settings.host}:{ctx.settings.port}", enqueue_run=_enqueue_run(ctx),
        enqueue_retry=_enqueue_retry(ctx)))
    ui_theme.install()
    register_all()
    nicegui_app.router.routes.append(api_mount())  # FastAPI sub-app at /api/v1: its own OpenAPI and /docs
    nicegui_app.mount("/webhooks", webhooks_app)  # inbound vendor webhooks (signature-verified)
    nicegui_app.add_middleware(AuthMiddleware)
    if ctx.settings.sandboxes_enabled:
        _mount_sandboxes()
    return ctx


def _enqueue_run(ctx: AppContext) -> Callable[[str, str], Awaitable[str]] | None:
    """The sync engine's "queue a manual run" for the pages' Sync now button (None until it exists)."""
    try:
        from app import sync_jobs
    except ImportError:
        return None
    pools: dict[int, Any] = {}  # one arq pool per event loop (tests run one loop each)

    async def enqueue(integration_id: str, requested_by: str) -> str:
        loop = id(asyncio.get_running_loop())
        if loop not in pools:
            pools.clear()
            pools[loop] = await sync_jobs.arq_pool(ctx.redis_url)
        return await sync_jobs.enqueue_run(ctx.db, pools[loop], integration_id, trigger="manual",
                                           requested_by=requested_by)

    return enqueue


def _enqueue_retry(ctx: AppContext) -> Callable[[str, dict[str, Any], str], Awaitable[str]] | None:
    """The sync engine's retry run for the errors inbox: (integration_id, params, requested_by) -> run id."""
    try:
        from app import sync_jobs
    except ImportError:
        return None
    pools: dict[int, Any] = {}  # one arq pool per event loop (tests run one loop each)

    async def enqueue(integration_id: str, params: dict[str, Any], requested_by: str) -> str:
        loop = id(asyncio.get_running_loop())
        if loop not in pools:
            pools.clear()
            pools[loop] = await sync_jobs.arq_pool(ctx.redis_url)
        return await sync_jobs.enqueue_run(ctx.db, pools[loop], integration_id, trigger="retry", params=params,
                                           requested_by=requested_by)

    return enqueue


def _mount_sandboxes() -> None:
    mount_sandboxes_lazily(nicegui_app, prefix="/sandbox")


def serve(ctx: AppContext | None = None) -> None:
    """Run the web server in this process until interrupted."""
    ctx = configure(ctx)
    _settle_garbage_collector()
    ui.run(host=ctx.settings.host, port=ctx.settings.port, title="CareHub", language="en-GB", reload=False, show=False,
           storage_secret=ctx.settings.effective_session_secret(), favicon="🏥", show_welcome_message=False,
           fastapi_docs=False)


def _settle_garbage_collector() -> None:
    # Everything imported at start-up lives for the whole process: moving it out of the
    # collector's generations removes ~100 ms full-collection stalls from request latency.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
