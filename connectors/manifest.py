"""Pydantic models of a connector manifest (``templates/connectors/<id>.yaml``).

A connector is data. Every family (auth, paginator, incremental, idempotency, error format) is a closed
vocabulary: a discriminated union on ``type`` here, and a small registry of implementations next to it
(``auth.AUTH_TYPES``, ``paginators.PAGINATORS``, ...). ``ConnectorManifest.model_json_schema()`` feeds
editors and the designer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.errors import ManifestError

Category = Literal["finance", "hr_workforce", "healthcare", "operations"]
IntegrationMethod = Literal["REST API", "FHIR", "HL7 v2", "file exchange", "partner-only", "SOAP", "GraphQL"]
Availability = Literal["available", "planned", "partner-only"]
FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime", "object", "array"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- auth


class OAuth2AuthorizationCode(_Model):
    """OAuth2 authorization code grant with refresh tokens (refreshed ahead of expiry)."""

    type: Literal["oauth2_authorization_code"]
    scopes: list[str] = []
    client_auth: Literal["basic", "body"] = "basic"
    refresh_margin_seconds: int = 60
    pkce: bool = False
    rotating_refresh_token: bool = True


class OAuth2ClientCredentials(_Model):
    """OAuth2 client credentials grant (app-restricted)."""

    type: Literal["oauth2_client_credentials"]
    scopes: list[str] = []
    client_auth: Literal["basic", "body"] = "basic"
    refresh_margin_seconds: int = 60


class NhsSignedJwt(_Model):
    """NHS England API platform: signed-JWT client assertion (RS512, ``kid``) for app-restricted access."""

    type: Literal["nhs_signed_jwt"]
    algorithm: Literal["RS512", "RS384", "RS256"] = "RS512"
    assertion_lifetime_seconds: int = 300
    refresh_margin_seconds: int = 30


class ApiKeyAuth(_Model):
    """A static API key sent in a header, the query string or the JSON body."""

    type: Literal["api_key"]
    location: Literal["header", "query", "body"] = "header"
    name: str
    prefix: str = ""
    secret: str = "api_key"


class BasicAuth(_Model):
    """HTTP basic auth; ``username``/``password`` are templates over config and secrets."""

    type: Literal["basic"]
    username: str = "{secrets.username}"
    password: str = "{secrets.password}"


class SessionTokenAuth(_Model):
    """Log in once (POST credentials), then send the returned token in a header."""

    type: Literal["session_token"]
    login_path: str
    login_body: dict[str, str]
    token_path: str = "token"
    header: str = "Authorization"
    prefix: str = ""
    ttl_seconds: int = 3600


class SignedRequestAuth(_Model):
    """Each request carries an HMAC signature over a declared part of the request."""

    type: Literal["signed_request"]
    algorithm: Literal["sha256", "sha1"] = "sha256"
    signs: Literal["query", "url_without_scheme", "body"] = "query"
    signature_header: str
    encoding: Literal["base64", "hex"] = "base64"
    secret: str = "api_key"
    extra_headers: dict[str, str] = {}


class CustomAuth(_Model):
    """Escape hatch: a Python auth registered by name in ``connectors.auth.register_auth``."""

    type: Literal["custom"]
    name: str
    options: dict[str, Any] = {}


class NoAuth(_Model):
    """No authentication (open sandboxes, public data)."""

    type: Literal["none"]


AuthSpec = Annotated[
    OAuth2AuthorizationCode
    | OAuth2ClientCredentials
    | NhsSignedJwt
    | ApiKeyAuth
    | BasicAuth
    | SessionTokenAuth
    | SignedRequestAuth
    | CustomAuth
    | NoAuth,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- paginators


class PageNumberPaginator(_Model):
    """``page=1,2,...``; stops on a short/empty page or when ``total_pages`` says so."""

    type: Literal["page_number"]
    page_param: str = "page"
    start: int = 1
    page_size_param: str | None = None
    page_size: int = 100
    total_pages: str | None = None  # JMESPath into the body


class OffsetLimitPaginator(_Model):
    """``offset``/``limit`` query parameters."""

    type: Literal["offset_limit"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    page_size: int = 100
    total: str | None = None


class CursorPaginator(_Model):
    """A cursor from the body (JMESPath) sent back as a query parameter."""

    type: Literal["cursor"]
    cursor_param: str = "cursor"
    cursor_path: str
    limit_param: str | None = None
    page_size: int = 100


class LinkHeaderPaginator(_Model):
    """RFC 8288 ``Link: <...>; rel="next"``."""

    type: Literal["link_header"]
    rel: str = "next"
    page_size_param: str | None = None
    page_size: int = 100


class NextUrlPaginator(_Model):
    """A next-page URL (absolute or relative) in the body, e.g. Sage ``$next``."""

    type: Literal["next_url"]
    next_path: str
    relative_to: str = ""  # path prefix relative links are based on (Sage: "/v3.1")
    page_size_param: str | None = None
    page_size: int = 100


class ODataPaginator(_Model):
    """OData: ``$top``/``$skip`` plus a server-driven ``__next`` / ``@odata.nextLink``."""

    type: Literal["odata"]
    page_size: int = 100
    next_link_paths: list[str] = ["\"@odata.nextLink\"", "d.__next", "__next"]


class QuickBooksQueryPaginator(_Model):
    """QuickBooks query language: ``SELECT * FROM X ... STARTPOSITION n MAXRESULTS m``."""

    type: Literal["quickbooks_query"]
    entity: str
    page_size: int = 1000


class SinglePagePaginator(_Model):
    """One request, no pagination."""

    type: Literal["single_page"]


class CustomPaginator(_Model):
    """Escape hatch: a Python paginator registered by name in ``connectors.paginators.register_paginator``."""

    type: Literal["custom"]
    name: str
    page_size: int = 100
    options: dict[str, Any] = {}


PaginatorSpec = Annotated[
    PageNumberPaginator
    | OffsetLimitPaginator
    | CursorPaginator
    | LinkHeaderPaginator
    | NextUrlPaginator
    | ODataPaginator
    | QuickBooksQueryPaginator
    | SinglePagePaginator
    | CustomPaginator,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- incremental


class IfModifiedSince(_Model):
    """Send ``If-Modified-Since`` (HTTP date or ISO, per vendor) with the last cursor."""

    type: Literal["if_modified_since"]
    format: Literal["http_date", "iso"] = "iso"


class QueryParamSince(_Model):
    """``updated_since``-style query parameter."""

    type: Literal["query_param"]
    param: str
    format: Literal["iso", "iso_z", "date", "epoch"] = "iso"
    template: str = "{since}"  # e.g. OData ``lastModifiedDateTime gt datetimeoffset'{since}'``


class FhirLastUpdated(_Model):
    """FHIR search ``_lastUpdated=gt<instant>``."""

    type: Literal["fhir_last_updated"]


class QuickBooksWhere(_Model):
    """QuickBooks query ``WHERE MetaData.LastUpdatedTime > '<ts>'``."""

    type: Literal["quickbooks_where"]


class QuickBooksCdc(_Model):
    """QuickBooks change data capture ``GET /cdc?entities=X&changedSince=<ts>`` (30-day window)."""

    type: Literal["quickbooks_cdc"]
    path: str
    entity: str


class DateWindow(_Model):
    """A from/to date window (HMRC: at most 366 days)."""

    type: Literal["date_window"]
    from_param: str = "from"
    to_param: str = "to"
    max_days: int = 366
    default_start: str = "2018-01-01"


class PaginatorSince(_Model):
    """The stream's (custom) paginator puts the cursor in the request itself, e.g. a QUERY body filter."""

    type: Literal["paginator"]
    format: Literal["iso", "iso_z", "date", "epoch"] = "iso"


IncrementalSpec = Annotated[
    IfModifiedSince | QueryParamSince | FhirLastUpdated | QuickBooksWhere | QuickBooksCdc | DateWindow
    | PaginatorSince,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- writes


class HeaderIdempotency(_Model):
    """Vendor idempotency key in a header (Xero ``Idempotency-Key``)."""

    type: Literal["header"]
    name: str = "Idempotency-Key"


class QueryIdempotency(_Model):
    """Vendor idempotency key in the query string (QuickBooks ``requestid``)."""

    type: Literal["query_param"]
    name: str = "requestid"


class LookupIdempotency(_Model):
    """No vendor key: store our key in a record field and look it up before creating.

    By default the look-up is a GET of the stream's path with ``search_param=<key>``; ``path``/``method``/
    ``body`` describe another look-up call (``{key}`` in body strings is replaced by the key).
    """

    type: Literal["lookup"]
    key_field: str
    search_param: str | None = "search"
    path: str | None = None
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, Any] | None = None


class BodyFieldIdempotency(_Model):
    """The vendor de-duplicates on a field of the JSON body (Slack ``client_msg_id``): every attempt carries it."""

    type: Literal["body_field"]
    field: str


class DuplicateIsSuccess(_Model):
    """The vendor rejects a repeat with a known code (HMRC ``DUPLICATE_SUBMISSION``): treat as done."""

    type: Literal["duplicate_is_success"]
    codes: list[str]


class NoIdempotency(_Model):
    """The vendor offers nothing; retries may duplicate (the engine avoids retrying these blindly)."""

    type: Literal["none"]


IdempotencySpec = Annotated[
    HeaderIdempotency | QueryIdempotency | LookupIdempotency | DuplicateIsSuccess | NoIdempotency
    | BodyFieldIdempotency,
    Field(discriminator="type"),
]


class WriteOperation(_Model):
    """One write endpoint. ``mode: batch`` sends up to ``batch_size`` records per request.

    Updates and deletes whose path does not name the record (Xero's ``POST /Contacts``) get the vendor id
    in ``id_field`` of each payload, so they can never create a record instead.
    """

    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str
    mode: Literal["single", "batch", "quickbooks_batch"] = "single"
    batch_size: int = 1
    wrap: str | None = None  # wrap key for the body: {"Invoices": [...]} or {"contact": {...}}
    params: dict[str, str] = {}
    headers: dict[str, str] = {}  # per-write headers (LinkedIn ``x-restli-method: batch_create``)
    response_records: str | None = None  # JMESPath to the per-element results
    id_field: str
    element_error: str | None = None  # JMESPath on an element giving a list of error messages
    entity: str | None = None  # QuickBooks batch entity name
    # Constant fields merged under every payload (PeopleHR ``Action``); strings may use ``{config.x}`` and
    # ``{record.external_id}``.
    body: dict[str, Any] = {}


class WriteSpec(_Model):
    """Writes of a stream: create, update and/or delete, with the vendor's idempotency mechanism.

    ``delete`` is how a record archived in WriteCareNotes leaves the vendor: a ``DELETE`` on the record's
    path, or the vendor's own archive as an update carrying ``body`` (Xero ``ContactStatus: ARCHIVED``).
    """

    create: WriteOperation | None = None
    update: WriteOperation | None = None
    delete: WriteOperation | None = None
    idempotency: IdempotencySpec = Field(default_factory=lambda: NoIdempotency(type="none"))


# --------------------------------------------------------------------------- streams, limits, errors


class StreamField(_Model):
    """One field of a stream's schema, shown in the designer."""

    name: str
    type: FieldType
    description: str
    sensitivity: Literal["none", "personal", "health", "financial"] = "none"


class StreamSpec(_Model):
    """One kind of record the connector reads and/or writes.

    ``source`` says where the stream's records come from:

    * ``poll`` (the default): the sync run reads ``path`` page by page (paginator, incremental, ...).
    * ``webhook``: the vendor only pushes these records. Deliveries verified by the connector's ``webhooks``
      scheme are kept in the webhook inbox (``inbound_events``) and each one queues a run of the stream, which
      reads the deliveries it has not consumed yet (``app.webhook_streams``) through the same mapping,
      validation and ownership path as a polled stream. ``records`` is then a JMESPath over one delivery body
      (``"[@]"`` for a body that is one record; a delivery it selects nothing from belongs to another stream),
      and ``primary_key``/``updated_at`` apply to each record as usual. ``path`` only names the event for
      people (e.g. ``"webhook: Apply Connect application"``): nothing is requested from it.
    """

    title: str
    path: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    records: str  # JMESPath to the list of records in the body
    primary_key: str
    updated_at: str | None = None
    date_format: Literal["iso", "ms_json", "date", "epoch"] = "iso"
    body: dict[str, Any] | None = None  # JSON body of a POST read (report or QUERY requests)
    paginator: PaginatorSpec = Field(default_factory=lambda: SinglePagePaginator(type="single_page"))
    incremental: IncrementalSpec | None = None
    write: WriteSpec | None = None
    care_type: str | None = None
    fields: list[StreamField]
    source: Literal["poll", "webhook"] = "poll"


class RateLimits(_Model):
    """Declared vendor limits per (connector, tenant); ``None`` means unpublished."""

    per_second: float | None = None
    per_minute: float | None = None
    per_day: int | None = None
    concurrent: int | None = None
    # Calls allowed back to back before the steady rate applies (the bucket's size); unset: one second's
    # worth of a per-second limit, ten seconds' worth of a per-minute one.
    burst: int | None = Field(default=None, ge=1)


class Backoff(_Model):
    """Full-jitter exponential backoff: sleep = random(0, min(cap, base * 2**attempt))."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0


class BodyErrors(_Model):
    """Errors sent with HTTP 200 and a flag in the body (Slack ``{"ok": false, "error": "..."}``).

    ``statuses`` maps the vendor's error code to the HTTP status the error rules should treat it as
    (``token_expired: 401`` triggers the refresh, ``ratelimited: 429`` the throttle path).
    """

    ok_path: str = "ok"
    error_path: str = "error"
    statuses: dict[str, int] = {}
    default_status: int = 400


class ErrorRules(_Model):
    """How the vendor signals errors and throttling."""

    format: Literal["xero", "quickbooks", "sage", "hmrc", "fhir", "generic", "bamboohr", "obie", "mesh",
                    "odata"] = "generic"
    retry_statuses: list[int] = [500, 502, 503, 504]
    throttle_statuses: list[int] = [429]
    rate_limit_problem_header: str | None = None
    # A vendor's own wait header when it sends no Retry-After (Brightpearl brightpearl-next-throttle-period, ms)
    retry_after_header: str | None = None
    retry_after_unit: Literal["seconds", "milliseconds"] = "seconds"
    default_retry_after_seconds: float = 60.0
    max_attempts: int = 10
    deadline_seconds: float = 300.0
    backoff: Backoff = Field(default_factory=Backoff)
    body_errors: BodyErrors | None = None


class WebhookHandshake(_Model):
    """A subscription handshake the receiver must answer."""

    type: Literal["xero_intent_to_receive", "slack_url_verification", "zoom_url_validation", "meta_verify_token"]


class WebhookSpec(_Model):
    """How the vendor signs webhook deliveries."""

    header: str
    algorithm: Literal["hmac_sha256", "hmac_sha1"] = "hmac_sha256"
    encoding: Literal["base64", "hex"] = "base64"
    # version_timestamp_body: "{version}:{timestamp}:{body}" (Samsara's v1; slack_v0 is the same with "v0").
    signed: Literal["body", "slack_v0", "version_timestamp_body", "timestamp_body", "body_timestamp",
                    "standard_webhooks"] = "body"
    version: str = "v0"
    prefix: str = ""
    secret_encoding: Literal["text", "base64"] = "text"  # base64: the HMAC key is the decoded secret
    # Largest body the receiver reads for this vendor (default 256 KB); files sent inline need more.
    max_body_bytes: int | None = Field(default=None, ge=1024, le=16 * 1024 * 1024)
    timestamp_header: str | None = None
    replay_window_seconds: int | None = None
    secret: str = "webhook_key"
    handshake: WebhookHandshake | None = None


class Environment(_Model):
    """URLs of one environment; relative URLs are joined to the base URL given at run time."""

    base_url: str
    token_url: str | None = None
    authorize_url: str | None = None


class ConfigField(_Model):
    """A field of the connection form (generated from the manifest)."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    description: str = ""


class ClientCertificate(_Model):
    """Mutual TLS: the connection's client certificate and key (PEM secrets) go with every call, token calls
    included (ADP). ``ca_secret`` names an extra CA bundle trusted for the vendor's server (private or test CAs)."""

    cert_secret: str = "client_certificate"
    key_secret: str = "client_key"
    key_password_secret: str | None = None
    ca_secret: str | None = None


class ConnectorManifest(_Model):
    """A whole connector, as data."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    category: Category
    subcategory: str
    integration_method: IntegrationMethod = "REST API"
    availability: Availability = "available"
    note: str = ""
    docs_url: str | None = None
    environments: dict[str, Environment]
    auth: AuthSpec
    config_fields: list[ConfigField] = []
    headers: dict[str, str] = {}
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    errors: ErrorRules = Field(default_factory=ErrorRules)
    test_stream: str | None = None
    streams: dict[str, StreamSpec]
    webhooks: WebhookSpec | None = None
    client_certificate: ClientCertificate | None = None

    @model_validator(mode="after")
    def _check(self) -> ConnectorManifest:
        if "production" not in self.environments:
            raise ValueError("environments must include `production`")
        if self.test_stream is not None and self.test_stream not in self.streams:
            raise ValueError(f"test_stream `{self.test_stream}` is not one of the streams")
        return self


# --------------------------------------------------------------------------- loading


def _allowed_from(err: Any) -> list[str]:
    ctx = err.get("ctx") or {}
    expected = ctx.get("expected") or ctx.get("expected_tags")
    if not expected:
        return []
    return [part.strip().strip("'\"") for part in str(expected).replace(" or ", ",").split(",") if part.strip()]


def manifest_error_from(path: str, exc: ValidationError) -> ManifestError:
    """Translate the first pydantic error into a ManifestError naming file, field and allowed values."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "<root>"
    return ManifestError(path, field, err["msg"], _allowed_from(err))


def parse_manifest(data: Any, path: str = "<memory>") -> ConnectorManifest:
    """Validate a decoded manifest; raise :class:`ManifestError` with file, field and allowed values."""
    try:
        return ConnectorManifest.model_validate(data)
    except ValidationError as exc:
        raise manifest_error_from(path, exc) from None


def load_manifest(path: str | Path) -> ConnectorManifest:
    """Read and validate one manifest file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ManifestError(str(p), "<yaml>", f"not valid YAML: {exc}") from None
    return parse_manifest(data, str(p))


def manifest_json_schema() -> dict[str, Any]:
    """The JSON schema of a connector manifest."""
    return ConnectorManifest.model_json_schema()
