"""Connect a system: a form generated from the connector's auth, the OAuth2 redirect, test, pick data types."""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from nicegui import app, ui
from starlette.responses import RedirectResponse

from connectors.auth import InMemoryTokenStore, OAuth2AuthorizationCodeAuthenticator
from connectors.errors import ConnectorError
from connectors.manifest import ConnectorManifest, OAuth2AuthorizationCode
from engine.caretypes import CARE_TYPES
from storage.integrations import (
    NotFound,
    configure_integration,
    get_integration,
    get_sync_settings,
    update_integration,
    update_sync_settings,
)
from storage.models import Integration
from ui.auth import actor, current_user
from ui.components import theme
from ui.components.bank_consent import (
    BANK_KIND,
    bank_connect_form,
    consent_panel,
    finish_bank_consent,
    is_bank_connector,
)
from ui.components.connection_form import auth_sentence, form_fields, uses_redirect
from ui.components.connector_access import (
    SANDBOX_PREFIX,
    catalog,
    discover_tenants,
    has_sandbox,
    manifest,
    practice_settings,
    sandbox_base_url,
    session_for,
    session_for_integration,
)
from ui.layout import frame
from ui.services import services

SANDBOX_CLIENT = {"client_id": "carehub-sandbox-app", "client_secret": "carehub-sandbox-secret"}
PENDING_KEY = "oauth_pending"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _load(integration_id: str) -> Integration | None:
    with services().db.session() as session:
        try:
            return get_integration(session, integration_id=integration_id)
        except NotFound:
            return None


def authorize_url(connector: ConnectorManifest, *, sandbox: bool, site: str, client_id: str, state: str,
                  code_challenge: str | None) -> str:
    """The vendor's sign-in page URL for the authorization-code grant."""
    env = connector.environments.get("sandbox" if sandbox else "production") or connector.environments["production"]
    url = env.authorize_url or ""
    if "://" not in url:
        url = f"{site}{SANDBOX_PREFIX}/{connector.id}{url}"
    auth = connector.auth
    scopes = auth.scopes if isinstance(auth, OAuth2AuthorizationCode) else []
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": f"{site}/oauth/callback",
              "scope": " ".join(scopes), "state": state}
    if code_challenge:
        params.update(code_challenge=code_challenge, code_challenge_method="S256")
    return f"{url}?{urlencode(params)}"


def _pkce() -> tuple[str, str]:
    verifier = pysecrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@ui.page("/connect/{connector_id}")
async def connect_page(connector_id: str, request: Request, integration: str = "", test: str = "",
                       bank: str = "") -> None:
    """Step 1 of journey 1: connect, test, choose what to sync."""
    entry = next((e for e in catalog().list() if e.id == connector_id or e.connector == connector_id), None)
    connector = manifest(connector_id)
    theme.apply()
    with frame("Connect a system"):
        if connector is None:
            if entry is None:
                ui.label("We don't know that system. Go back to the gallery and pick one from the list.").mark(
                    "connect-unknown")
            else:
                ui.label(f"{entry.name} cannot be connected yet ({entry.availability}). {entry.note}").mark(
                    "connect-unavailable")
            ui.link("Back to the gallery", "/gallery")
            return
        row = _load(integration) if integration else None
        if integration and row is None:
            ui.label("That connection no longer exists. Start again from the gallery.").mark("connect-missing")
            ui.link("Back to the gallery", "/gallery")
            return
        ui.label(connector.name).classes("text-xl font-semibold").props("role=heading aria-level=2")
        ui.label(auth_sentence(connector))
        if row is None and is_bank_connector(connector):
            bank_connect_form(connector, _base(request), bank)
        elif row is None:
            _connection_form(connector, _base(request))
        else:
            await _connected(connector, row, auto_test=test == "1")


def _connection_form(connector: ConnectorManifest, site: str) -> None:
    svc = services()
    with ui.card().classes("w-full max-w-2xl gap-3").mark("connect-form"):
        ui.label("1. Connect").classes("text-lg font-semibold").props("role=heading aria-level=3")
        name = ui.input("Name for this connection", value=f"{connector.name} for our home").classes("w-full").props(
            'aria-required=true').mark("connect-name")
        practice = has_sandbox(connector)
        env_choice: dict[str, bool] = {"sandbox": practice}
        if practice:
            env = ui.radio({"sandbox": "Practice (safe sandbox with sample data)", "production": "Live account"},
                           value="sandbox").props('aria-label="Which account"').mark("connect-environment")
            env.on_value_change(lambda e: (env_choice.update(sandbox=e.value == "sandbox"), inputs.refresh()))
        practice_config, practice_creds = practice_settings(connector.id) if practice else ({}, {})
        values: dict[str, Any] = {}

        @ui.refreshable
        def inputs() -> None:
            sandbox = env_choice["sandbox"]
            for f in form_fields(connector, sandbox=sandbox, provided=practice_creds):
                label = f.label + ("" if f.required else " (optional)")
                start = str(practice_config.get(f.name, "")) if sandbox and f.store == "config" else ""
                values[f.name] = start
                box = ui.input(label, value=start, password=f.secret, password_toggle_button=f.secret,
                               on_change=lambda e, n=f.name: values.__setitem__(n, e.value or "")).classes("w-full")
                box.props(f'autocomplete={"new-password" if f.secret else "off"}'
                          + (" aria-required=true" if f.required else "")).mark(f"field-{f.name}")
                if f.description:
                    box.props(f'hint="{f.description}"')
            if sandbox and (uses_redirect(connector) or practice_creds):
                ui.label(f"Practice mode uses the {connector.name} sandbox's test account: no keys needed.")

        inputs()
        message = ui.label("").classes("text-red-800").props("role=alert").mark("connect-message")

        async def connect() -> None:
            sandbox = env_choice["sandbox"]
            fields = form_fields(connector, sandbox=sandbox, provided=practice_creds)
            missing = [f.label for f in fields if f.required and not str(values.get(f.name, "")).strip()]
            if not (name.value or "").strip():
                missing.insert(0, "Name for this connection")
            if missing:
                message.text = "Please fill in: " + ", ".join(missing) + "."
                return
            details: dict[str, Any] = {"environment": "sandbox" if sandbox else "production"}
            creds: dict[str, Any] = dict(SANDBOX_CLIENT) if sandbox and uses_redirect(connector) else {}
            if sandbox:
                creds.update(practice_creds)
            for f in fields:
                (creds if f.store == "secrets" else details)[f.name] = str(values.get(f.name, "")).strip()
            if sandbox:
                details["environment"] = "sandbox"
                details["base_url"] = sandbox_base_url(connector.id, site)
            with svc.db.session() as session:
                row = configure_integration(
                    session, box=svc.box, actor=actor(), connector_id=connector.id, name=name.value.strip(),
                    system_name=connector.name, integration_type=connector.category,
                    authentication_method=connector.auth.type, connection_details=details, credentials=creds)
                integration_id = row.id
            if uses_redirect(connector):
                start_oauth(connector, integration_id, site, sandbox, str(creds.get("client_id", "")))
            else:
                ui.navigate.to(f"/connect/{connector.id}?integration={integration_id}&test=1")

        label = f"Sign in to {connector.name}" if uses_redirect(connector) else "Save and test connection"
        ui.button(label, icon="login" if uses_redirect(connector) else "save", on_click=connect).props(
            "no-caps").mark("connect-submit")


def start_oauth(connector: ConnectorManifest, integration_id: str, site: str, sandbox: bool, client_id: str) -> None:
    """Remember the pending sign-in in the session and send the browser to the vendor's page."""
    state = pysecrets.token_urlsafe(24)
    verifier, challenge = _pkce() if isinstance(connector.auth, OAuth2AuthorizationCode) and connector.auth.pkce \
        else (None, None)
    pending = dict(app.storage.user.get(PENDING_KEY) or {})
    pending[state] = {"integration": integration_id, "connector": connector.id, "verifier": verifier,
                      "redirect_uri": f"{site}/oauth/callback"}
    app.storage.user[PENDING_KEY] = dict(list(pending.items())[-5:])
    ui.navigate.to(authorize_url(connector, sandbox=sandbox, site=site, client_id=client_id, state=state,
                                 code_challenge=challenge))


@ui.page("/oauth/callback")
async def oauth_callback(request: Request, code: str = "", state: str = "", error: str = "",
                         error_description: str = "") -> RedirectResponse | None:
    """Where the vendor sends the browser back: exchange the code, keep the tokens encrypted."""
    if not (code or state or error):  # OBIE banks answer the hybrid flow in the URL fragment: pass it on
        ui.add_head_html("<script>if (location.hash.length > 1) "
                         "location.replace(location.pathname + '?' + location.hash.slice(1));</script>")
    pending = dict(app.storage.user.get(PENDING_KEY) or {})
    entry = pending.pop(state, None) if state else None
    app.storage.user[PENDING_KEY] = pending
    problem = ""
    if current_user() is None:
        problem = "Your CareHub session ended during sign-in. Sign in to CareHub and connect again."
    elif entry is None:
        problem = "This sign-in link is not one CareHub started (or it was already used). Start connecting again."
    elif entry.get("kind") == BANK_KIND:
        problem, target = await finish_bank_consent(entry, code=code, error=error, error_description=error_description)
        if target:
            return RedirectResponse(target)
    elif error:
        problem = f"The vendor did not allow access: {error_description or error}. You can try again."
    elif not code:
        problem = "The vendor sent no authorisation code back. Try connecting again."
    if not problem and entry is not None:
        problem = await _finish_oauth(entry, code)
        if not problem:
            return RedirectResponse(f"/connect/{entry['connector']}?integration={entry['integration']}&test=1")
    theme.apply()
    ui.page_title("Connection problem · CareHub")
    with ui.element("main").classes("w-full max-w-2xl mx-auto p-6 gap-4 flex flex-col"):
        ui.label("We could not finish connecting").classes("text-2xl font-semibold").props("role=heading aria-level=1")
        ui.label(problem).props("role=alert").mark("oauth-problem")
        ui.link("Back to the gallery", "/gallery")
    return None


async def _finish_oauth(entry: dict[str, Any], code: str) -> str:
    """Exchange the code; returns a problem sentence, or "" on success."""
    svc = services()
    row = _load(str(entry["integration"]))
    connector = manifest(str(entry["connector"]))
    if row is None or connector is None:
        return "That connection no longer exists. Start again from the gallery."
    creds = svc.box.decrypt(row.credentials_encrypted)
    details = dict(row.connection_details)
    async with session_for(connector, details, creds, connection_id=row.id, token_store=InMemoryTokenStore()) as sess:
        auth = sess.auth
        if not isinstance(auth, OAuth2AuthorizationCodeAuthenticator):
            return f"{connector.name} does not sign in with a redirect."
        try:
            tokens = await auth.exchange_code(code, str(entry["redirect_uri"]), entry.get("verifier"))
            tenants = await discover_tenants(sess)
        except ConnectorError as exc:
            return f"{connector.name} refused the sign-in: {exc}"
    creds["tokens"] = {k: v for k, v in tokens.items() if v is not None}
    if tenants:
        details["tenant_id"] = tenants[0][0]
        details["tenant_name"] = tenants[0][1]
        details["tenants"] = [{"id": t, "name": n} for t, n in tenants]
    with svc.db.session() as session:
        update_integration(session, box=svc.box, actor=actor(), integration_id=row.id, connection_details=details,
                           credentials=creds)
    return ""


async def _test(integration_id: str) -> tuple[bool, str]:
    row = _load(integration_id)
    if row is None:
        return False, "That connection no longer exists."
    try:
        async with session_for_integration(row) as sess:
            result = await sess.test_connection()
    except (ConnectorError, LookupError, ValueError) as exc:
        return False, f"Could not try the connection: {exc}"
    return result.ok, result.reason


async def _connected(connector: ConnectorManifest, row: Integration, *, auto_test: bool = False) -> None:
    svc = services()
    details = dict(row.connection_details)
    creds = svc.box.decrypt(row.credentials_encrypted)
    with ui.card().classes("w-full max-w-2xl gap-3").mark("connect-status"):
        ui.label("1. Connection").classes("text-lg font-semibold").props("role=heading aria-level=3")
        ui.label(f"Connection: {row.name}")
        signed_in = bool(creds.get("tokens")) or not uses_redirect(connector)
        ui.label("Credentials saved (encrypted; they are never shown again)." if signed_in else
                 f"Not signed in to {connector.name} yet.")
        if is_bank_connector(connector):
            consent_panel(connector, row.id, _site(details, connector))
        tenants = details.get("tenants") or []
        if len(tenants) > 1:
            def choose(value: str) -> None:
                details["tenant_id"] = value
                details["tenant_name"] = next((t["name"] for t in tenants if t["id"] == value), value)
                with svc.db.session() as session:
                    update_integration(session, box=svc.box, actor=actor(), integration_id=row.id,
                                       connection_details=details)
            ui.select({t["id"]: t["name"] for t in tenants}, value=details.get("tenant_id"),
                      label="Organisation", on_change=lambda e: choose(e.value)).classes("w-96")
        elif details.get("tenant_name"):
            ui.label(f"Organisation: {details['tenant_name']}").mark("connect-tenant")
        result = ui.label("").props("role=status aria-live=polite").mark("test-result")

        async def test() -> None:
            result.text = "Trying the connection…"
            ok, reason = await _test(row.id)
            result.text = ("Success: " if ok else "Problem: ") + reason
            result.classes(replace="text-green-900" if ok else "text-red-800")

        with ui.row().classes("gap-2"):
            ui.button("Test connection", icon="network_check", on_click=test).props("no-caps").mark("test-connection")
            if uses_redirect(connector):
                ui.button(f"Sign in to {connector.name} again", on_click=lambda: start_oauth(
                    connector, row.id, _site(details, connector), details.get("environment") == "sandbox",
                    str(creds.get("client_id", "")))).props("flat no-caps")
        if auto_test and signed_in:
            ui.timer(0.1, test, once=True)
    with svc.db.session() as session:
        chosen = {s["stream"] for s in get_sync_settings(session, integration_id=row.id).streams}
    _stream_picker(connector, row.id, chosen)


def _site(details: dict[str, Any], connector: ConnectorManifest) -> str:
    base = str(details.get("base_url") or services().public_url)
    suffix = f"{SANDBOX_PREFIX}/{connector.id}"
    return base[: -len(suffix)] if base.endswith(suffix) else services().public_url


def _stream_picker(connector: ConnectorManifest, integration_id: str, chosen: set[str]) -> None:
    with ui.card().classes("w-full max-w-2xl gap-2").mark("stream-picker"):
        ui.label("2. Choose what to sync").classes("text-lg font-semibold").props("role=heading aria-level=3")
        ui.label("Tick the kinds of record you want CareHub to keep in step with WriteCareNotes.")
        picked: dict[str, bool] = {}
        for sid, spec in connector.streams.items():
            if not spec.care_type:
                continue
            care = CARE_TYPES.get(spec.care_type)
            meaning = care.description if care else ""
            picked[sid] = sid in chosen or (not chosen and sid == next(iter(connector.streams)))
            with ui.row().classes("items-start no-wrap gap-2"):
                ui.checkbox(f"{spec.title} → {spec.care_type} in WriteCareNotes", value=picked[sid],
                            on_change=lambda e, s=sid: picked.__setitem__(s, bool(e.value))).mark(f"stream-{sid}")
            if meaning:
                ui.label(meaning).classes("text-sm text-slate-700 ml-10")
        problem = ui.label("").classes("text-red-800").props("role=alert")

        def go() -> None:
            streams = [{"stream": s, "care_type": str(connector.streams[s].care_type)} for s, on in picked.items() if on]
            if not streams:
                problem.text = "Tick at least one kind of record."
                return
            with services().db.session() as session:
                update_sync_settings(session, actor=actor(), integration_id=integration_id, streams=streams)
            ui.navigate.to(f"/integrations/{integration_id}/design/{streams[0]['stream']}")

        ui.button("Continue to field mapping", icon="arrow_forward", on_click=go).props("no-caps").mark(
            "continue-mapping")


async def run_test_now(integration_id: str) -> tuple[bool, str]:
    """Test a saved connection (also used by the integration page)."""
    return await _test(integration_id)

