"""The connection form, generated from a connector's auth and config fields (no per-vendor page code)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from connectors.manifest import (
    ApiKeyAuth,
    BasicAuth,
    ConnectorManifest,
    NhsSignedJwt,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    SessionTokenAuth,
    SignedRequestAuth,
)
from ui.components.connector_access import TENANT_DISCOVERY

_SECRET_REF = re.compile(r"\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}")
# Credentials that identify rather than authenticate: shown as plain text (still stored encrypted).
IDENTIFIERS = {"username", "email", "kid", "app_key", "access_key"}

AUTH_SENTENCES: dict[str, str] = {
    "oauth2_authorization_code": "You sign in on {name}'s own page and allow CareHub in; CareHub never sees "
                                 "your {name} password.",
    "oauth2_client_credentials": "CareHub uses an app key and secret issued by {name}.",
    "nhs_signed_jwt": "CareHub signs each request with your organisation's NHS key.",
    "api_key": "Paste the API key from {name}'s settings page. It is stored encrypted and never shown again.",
    "basic": "Enter the user name and password of the {name} account CareHub should use. They are stored "
             "encrypted and never shown again.",
    "session_token": "Enter the {name} login CareHub should use. It is stored encrypted and never shown again.",
    "signed_request": "Paste the signing key from {name}. It is stored encrypted and never shown again.",
    "custom": "Enter the details {name} gave you. Secrets are stored encrypted and never shown again.",
    "none": "{name} needs no sign-in.",
}


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of the connection form. Secrets go to encrypted credentials and are write-only."""

    name: str
    label: str
    secret: bool
    required: bool
    description: str
    store: str  # "config" (connection details) or "secrets" (encrypted credentials)


def _label(name: str) -> str:
    return {"api_key": "API key", "client_id": "App client ID", "client_secret": "App client secret",
            "private_key": "Private key (PEM)", "kid": "Key id (kid)", "username": "User name",
            "password": "Password", "webhook_key": "Webhook signing key"}.get(name, name.replace("_", " ").capitalize())


def form_fields(connector: ConnectorManifest, *, sandbox: bool, provided: Collection[str] = ()) -> list[FormField]:
    """The inputs to ask for, in order: config first, then secrets.

    In practice (sandbox) mode the sandbox's test app stands in for the OAuth client, and secrets the sandbox
    hands out (``provided``) are filled in by CareHub, so no keys are asked.
    Config fields that the vendor tells us after sign-in (the Xero organisation) are not asked here.
    """
    auth = connector.auth
    fields: list[FormField] = []
    discovered = {"tenant_id"} if connector.id in TENANT_DISCOVERY else set()
    if sandbox:
        discovered.add("environment")  # practice mode always talks to the local sandbox
    for cf in connector.config_fields:
        if cf.name in discovered:
            continue
        fields.append(FormField(cf.name, cf.label, cf.secret, cf.required, cf.description,
                                "secrets" if cf.secret else "config"))
    secret_names: list[str] = []
    if isinstance(auth, OAuth2AuthorizationCode | OAuth2ClientCredentials):
        if not sandbox:
            secret_names += ["client_id", "client_secret"]
    elif isinstance(auth, NhsSignedJwt):
        secret_names += ["api_key", "kid", "private_key"]
    elif isinstance(auth, ApiKeyAuth | SignedRequestAuth):
        secret_names.append(auth.secret)
    elif isinstance(auth, BasicAuth):
        secret_names += _SECRET_REF.findall(auth.username + " " + auth.password)
    elif isinstance(auth, SessionTokenAuth):
        secret_names += _SECRET_REF.findall(" ".join(auth.login_body.values()))
    # Any other credential the manifest's templates use (headers, paths, bodies): {secrets.access_key}...
    secret_names += _SECRET_REF.findall(connector.model_dump_json())
    known = {f.name for f in fields}
    skip = {"access_token", "refresh_token", "expires_at", "tokens"} | (
        {"client_id", "client_secret"} if sandbox and isinstance(auth, OAuth2AuthorizationCode) else set())
    for name in dict.fromkeys(secret_names):
        if name in known or name in skip:
            continue
        fields.append(FormField(name, _label(name), name not in IDENTIFIERS and not name.endswith("_id"), True, "",
                                "secrets"))
    if sandbox and provided:
        fields = [f for f in fields if not (f.store == "secrets" and f.name in provided)]
    return fields


def auth_sentence(connector: ConnectorManifest) -> str:
    """One sentence telling a manager how this system signs in."""
    return AUTH_SENTENCES.get(connector.auth.type, AUTH_SENTENCES["custom"]).format(name=connector.name)


def uses_redirect(connector: ConnectorManifest) -> bool:
    """True when connecting means signing in on the vendor's page (OAuth2 authorization code)."""
    return isinstance(connector.auth, OAuth2AuthorizationCode)
