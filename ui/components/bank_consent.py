"""Connect a bank through Open Banking: pick the bank, give consent at the bank, come back connected.

The OBIE account-access-consent flow: a TPP token (``client_credentials``) → ``POST /account-access-consents``
(the permissions and a 90-day ``ExpirationDateTime``) → the manager is sent to the bank's authorize page with a
signed request object naming the consent → the bank sends the browser back to ``/oauth/callback`` with a code
→ the code is exchanged for tokens bound to the consent → the consent reads ``Authorised``.

Nothing is saved until the bank has said yes: the connection's details and keys wait for the answer sealed
(encrypted) in the manager's session, so a consent refused at the bank leaves no connection behind.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
from nicegui import app, ui

from connectors.auth import InMemoryTokenStore
from connectors.banking.obie import (
    authorization_url,
    complete_authorisation,
    consent_authorised,
    consent_days_left,
    consent_expiry,
    create_consent,
    get_consent,
    needs_reauthorisation,
    revoke_consent,
)
from connectors.banking.profiles import PROFILES, profile_for
from connectors.errors import ConnectorError
from connectors.manifest import ConnectorManifest
from storage.integrations import NotFound, configure_integration, get_integration, update_integration
from ui.auth import actor
from ui.components.connector_access import (
    has_sandbox,
    manifest,
    practice_settings,
    sandbox_base_url,
    session_for,
)
from ui.services import services

log = logging.getLogger(__name__)
BANK_KIND = "bank-consent"
PENDING_KEY = "oauth_pending"  # shared with the OAuth sign-ins of the Connect page: one callback serves both
BANKS = ("barclays", "hsbc", "lloyds", "natwest")


def is_bank_connector(connector: ConnectorManifest) -> bool:
    """True for the Open Banking connector (auth ``custom`` named ``obie``)."""
    auth = connector.auth
    return auth.type == "custom" and getattr(auth, "name", "") == "obie"


def bank_name(details: Mapping[str, Any]) -> str:
    """The bank a connection reads, in words."""
    profile = profile_for(str(details.get("bank") or details.get("environment") or ""))
    return profile.name if profile else "your bank"


def _remember(store: MutableMapping[str, Any], entry: dict[str, Any]) -> str:
    state = pysecrets.token_urlsafe(24)
    pending = dict(store.get(PENDING_KEY) or {})
    pending[state] = entry
    store[PENDING_KEY] = dict(list(pending.items())[-5:])
    return state


async def start_bank_consent(connector: ConnectorManifest, *, site: str, name: str, details: Mapping[str, Any],
                             creds: Mapping[str, Any], integration_id: str | None = None, replaces: str = "") -> str:
    """Ask the bank for a consent and send the browser to the bank; returns a problem sentence, or "".

    ``replaces``: the consent a re-authorisation renews (withdrawn at the bank once the new one is authorised).
    """
    sandbox = details.get("environment") == "sandbox"
    redirect_uri = f"{site}/oauth/callback"
    # Taken before any call: an in-process sandbox request through this app replaces the current request
    # (NiceGUI's request context), and with it whose session storage app.storage.user would name.
    store = app.storage.user
    try:
        async with session_for(connector, details, creds, connection_id=integration_id or "bank-consent",
                               token_store=InMemoryTokenStore()) as sess:
            expires = consent_expiry()
            consent = await create_consent(sess, expires=expires)
            state = _remember(store, {
                "kind": BANK_KIND, "connector": connector.id, "integration": integration_id, "name": name,
                "consent_id": str(consent["ConsentId"]), "expires": expires, "redirect_uri": redirect_uri,
                "replaces": replaces,
                "sealed": services().box.encrypt({"details": dict(details), "creds": dict(creds)})})
            url = authorization_url(sess, str(consent["ConsentId"]), redirect_uri, state=state,
                                    public_base=sandbox_base_url(connector.id, site) if sandbox else None)
    except (ConnectorError, httpx.HTTPError) as exc:
        return f"{bank_name(details)} did not accept the request for access: {exc}"
    ui.navigate.to(url)
    return ""


async def finish_bank_consent(entry: Mapping[str, Any], *, code: str, error: str,
                              error_description: str) -> tuple[str, str]:
    """The bank's answer: ``(problem, "")``, or ``("", where to go next)`` once the connection is saved."""
    svc = services()
    who = actor()  # before any in-process call (see start_bank_consent)
    sealed = svc.box.decrypt(str(entry.get("sealed") or ""))
    details, creds = dict(sealed.get("details") or {}), dict(sealed.get("creds") or {})
    bank = bank_name(details)
    kept = "Your existing bank access is unchanged." if entry.get("integration") else "Nothing was saved."
    if error:
        why = "you chose not to allow access" if error == "access_denied" else (error_description or error)
        return f"{bank} did not authorise CareHub to see your accounts ({why}). {kept} You can try again.", ""
    if not code:
        return f"{bank} sent no authorisation code back. {kept} Try connecting again.", ""
    connector = manifest(str(entry["connector"]))
    if connector is None:
        return "The Open Banking connector is not available.", ""
    consent_id = str(entry["consent_id"])
    try:
        async with session_for(connector, details, creds, connection_id=str(entry.get("integration") or consent_id),
                               token_store=InMemoryTokenStore()) as sess:
            tokens = await complete_authorisation(sess, code, str(entry["redirect_uri"]))
            profile = profile_for(str(details.get("environment")))
            status = "Authorised"
            if profile is None or profile.consent_get_supported:  # NatWest answers 404 to a consent GET
                status = str((await get_consent(sess, consent_id)).get("Status"))
            replaced = str(entry.get("replaces") or "")
            if replaced and consent_authorised(status):
                try:  # the consent this one replaces is withdrawn at the bank; it lapses on its own otherwise
                    await revoke_consent(sess, replaced)
                except ConnectorError as exc:
                    log.warning("could not withdraw the replaced bank consent %s: %s", replaced, exc)
    except (ConnectorError, httpx.HTTPError) as exc:
        return f"{bank} refused to finish the connection: {exc}. {kept} You can try again.", ""
    if not consent_authorised(status):
        return f"{bank} has not authorised the access (the consent is {status}). {kept} You can try again.", ""
    consent = {"id": consent_id, "status": "Authorised", "expires": str(entry["expires"]),
               "authorised_at": datetime.now(UTC).isoformat(timespec="seconds")}
    new_creds = {"tokens": {k: v for k, v in tokens.items() if v is not None}, "consent": consent}
    with svc.db.session() as session:
        if entry.get("integration"):
            row = update_integration(session, box=svc.box, actor=who, integration_id=str(entry["integration"]),
                                     credentials=new_creds)
        else:
            row = configure_integration(
                session, box=svc.box, actor=who, connector_id=connector.id, name=str(entry["name"]),
                system_name=f"{connector.name} ({bank})", integration_type=connector.category,
                authentication_method=connector.auth.type, connection_details=details,
                credentials={**creds, **new_creds})
        integration_id = row.id
    return "", f"/connect/{connector.id}?integration={integration_id}&test=1"


def bank_connect_form(connector: ConnectorManifest, site: str, bank: str = "") -> None:
    """Name, bank (``bank`` when the gallery card named one), practice or live keys, and "Connect bank"."""
    practice = has_sandbox(connector)
    first = bank if bank in BANKS else BANKS[0]
    choice: dict[str, Any] = {"sandbox": practice, "bank": first}
    practice_config, practice_creds = practice_settings(connector.id) if practice else ({}, {})
    values: dict[str, str] = {}
    with ui.card().classes("w-full max-w-2xl gap-3").mark("connect-form"):
        ui.label("1. Connect your bank").classes("text-lg font-semibold").props("role=heading aria-level=3")
        name = ui.input("Name for this connection", value="Bank account for our home").classes("w-full").props(
            "aria-required=true").mark("connect-name")
        ui.select({b: PROFILES[b].name for b in BANKS}, value=first, label="Your bank",
                  on_change=lambda e: choice.update(bank=e.value)).classes("w-64").mark("connect-bank")
        if practice:
            env = ui.radio({"sandbox": "Practice (the CareHub sandbox bank with sample accounts)",
                            "production": "Live bank account"}, value="sandbox").props(
                'aria-label="Which account"').mark("connect-environment")
            env.on_value_change(lambda e: (choice.update(sandbox=e.value == "sandbox"), keys.refresh()))

        @ui.refreshable
        def keys() -> None:
            if choice["sandbox"]:
                ui.label("Practice mode: you approve or refuse access on the sandbox bank's own page; no keys "
                         "needed.")
                return
            ui.label("Live access needs CareHub's registration with your bank as an account information "
                     "provider (FCA-authorised, on the Open Banking Directory).")
            for field, label, secret in (("client_id", "Client id from the bank's registration", False),
                                         ("private_key", "Signing key (PEM)", True),
                                         ("kid", "Signing key id (kid) on the Open Banking Directory", False)):
                values.setdefault(field, "")
                ui.input(label + (" (optional)" if field == "kid" else ""), password=secret,
                         password_toggle_button=secret,
                         on_change=lambda e, f=field: values.__setitem__(f, e.value or "")).classes("w-full").props(
                    f"autocomplete={'new-password' if secret else 'off'}").mark(f"field-{field}")

        keys()
        message = ui.label("").classes("text-red-800").props("role=alert").mark("connect-message")

        async def connect() -> None:
            sandbox, bank = bool(choice["sandbox"]), str(choice["bank"])
            missing = [] if (name.value or "").strip() else ["Name for this connection"]
            if not sandbox:
                missing += [label for f, label in (("client_id", "Client id"), ("private_key", "Signing key"))
                            if not values.get(f, "").strip()]
            if missing:
                message.text = "Please fill in: " + ", ".join(missing) + "."
                return
            if sandbox:
                details: dict[str, Any] = {**practice_config, "environment": "sandbox", "bank": bank,
                                           "base_url": sandbox_base_url(connector.id, site)}
                creds: dict[str, Any] = dict(practice_creds)
            else:
                details = {"environment": bank, "bank": bank}
                creds = {k: values[k].strip() for k in ("client_id", "private_key", "kid") if values.get(k, "").strip()}
            message.text = f"Asking {PROFILES[bank].name if not sandbox else 'the sandbox bank'} for access…"
            problem = await start_bank_consent(connector, site=site, name=name.value.strip(), details=details,
                                               creds=creds)
            message.text = problem

        ui.button("Connect bank", icon="account_balance", on_click=connect).props("no-caps").mark("connect-submit")


def consent_panel(connector: ConnectorManifest, integration_id: str, site: str) -> None:
    """The consent's bank and expiry, with a prompt to re-authorise when it is near its end."""
    svc = services()
    with svc.db.session() as session:
        try:
            row = get_integration(session, integration_id=integration_id)
        except NotFound:
            return
        details, name = dict(row.connection_details), row.name
        creds = svc.box.decrypt(row.credentials_encrypted)
    stored = creds.get("consent")
    consent: dict[str, Any] = dict(stored) if isinstance(stored, Mapping) else {}
    bank = bank_name(details)
    expires = str(consent.get("expires") or "")
    left = consent_days_left(expires)
    if not consent:
        ui.label(f"{bank} has not authorised access yet.").mark("bank-consent")
    elif left is None:
        ui.label(f"{bank} access authorised (no end date).").mark("bank-consent")
    else:
        until = datetime.fromisoformat(expires.replace("Z", "+00:00")).strftime("%-d %B %Y")
        if left < 0:
            ui.label(f"{bank} access ended on {until}: CareHub cannot read the accounts until you re-authorise."
                     ).classes("text-red-800").mark("bank-consent")
        else:
            ui.label(f"{bank} access authorised until {until} ({left} days left).").mark("bank-consent")
    message = ui.label("").classes("text-red-800").props("role=alert")
    if consent and not needs_reauthorisation(expires):
        return
    if consent and left is not None and left >= 0:
        ui.label(f"Your bank access ends in {left} days. Re-authorise now so bank transactions keep coming in."
                 ).props("role=status").classes("text-amber-900").mark("bank-reauthorise-prompt")

    async def again() -> None:
        message.text = await start_bank_consent(connector, site=site, name=name, details=details,
                                                creds={k: v for k, v in creds.items() if k not in ("tokens",
                                                                                                  "consent")},
                                                integration_id=integration_id, replaces=str(consent.get("id") or ""))

    ui.button(f"Re-authorise {bank} access", icon="autorenew", on_click=again).props("no-caps").mark(
        "bank-reauthorise")
