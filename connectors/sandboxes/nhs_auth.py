"""One signed-JWT token endpoint for the health sandboxes: the ``client_credentials`` grant with a
``private_key_jwt`` client assertion, as the NHS API platform (PDS, BaRS, SCR: RS512, ``kid``) and SMART
Backend Services (Cerner, Epic: RS384/ES384 against the app's registered JWKS, ``jku``) check it.

:func:`add_signed_jwt_token_route` mounts the endpoint; :class:`AssertionPolicy` says what the vendor demands
and :data:`NHS_REFUSALS` / :data:`SMART_REFUSALS` how it words each refusal; :func:`rsa_key_pair` makes a
test client's signing keys. What a valid request gets back
(the token reply) stays with each sandbox (``issue``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData

from connectors.sandboxes.common import SandboxState

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
UNCHECKED = object()  # a key lookup's answer when no key is registered yet: the signature is not checked
REQUIRED_CLAIMS = ["iss", "sub", "aud", "jti", "exp"]

# refusal -> (status, error, description); descriptions may name {alg}, {algs}, {aud} and {exc}
Refusals = Mapping[str, tuple[int, str, str]]
NHS_REFUSALS: Refusals = MappingProxyType({  # the NHS API platform's own wording (identity-service)
    "grant": (400, "unsupported_grant_type", "grant_type must be 'client_credentials'"),
    "assertion_type": (400, "invalid_request", f"Missing or invalid client_assertion_type - must be '{JWT_BEARER}'"),
    "malformed": (400, "invalid_request", "Malformed JWT in client_assertion"),
    "alg": (400, "invalid_request", "Invalid 'alg' header in client_assertion JWT - must be {algs}"),
    "missing_kid": (400, "invalid_request", "Missing 'kid' header in client_assertion JWT"),
    "unknown_kid": (401, "invalid_request", "Invalid 'kid' header in client_assertion JWT - no matching public key"),
    "aud": (401, "invalid_request", "Invalid 'aud' claim in client_assertion JWT - must be {aud}"),
    "expired": (400, "invalid_request", "Invalid 'exp' claim in client_assertion JWT - JWT has expired"),
    "signature": (400, "invalid_request", "Invalid client_assertion JWT: {exc}"),
    "invalid": (400, "invalid_request", "Invalid client_assertion JWT: {exc}"),
    "iss_sub": (400, "invalid_request", "Invalid 'iss'/'sub' claims in client_assertion JWT - must match"),
    "client": (401, "invalid_request", "Invalid 'iss'/'sub' claims in client_assertion JWT"),
    "exp_too_far": (400, "invalid_request", "Invalid 'exp' claim in client_assertion JWT - more than 5 minutes in "
                                            "future"),
    "jti": (400, "invalid_request", "Non-unique 'jti' claim in client_assertion JWT"),
})
SMART_REFUSALS: Refusals = MappingProxyType({  # SMART Backend Services (RFC 6749 error codes), as Cerner and Epic answer
    "grant": (400, "unsupported_grant_type", "grant_type must be client_credentials"),
    "assertion_type": (400, "invalid_request", f"client_assertion_type must be {JWT_BEARER}"),
    "malformed": (400, "invalid_client", "client_assertion is not a JWT"),
    "alg": (400, "invalid_client", "client_assertion alg {alg} is not supported ({algs})"),
    "missing_kid": (400, "invalid_client", "no key in the client's registered JWKS matches the kid"),
    "unknown_kid": (400, "invalid_client", "no key in the client's registered JWKS matches the kid"),
    "jku_missing": (400, "invalid_client", "this backend app must name its registered JWKS URL in jku"),
    "jku": (400, "invalid_client", "jku is not the JWKS URL registered for this client"),
    "aud": (400, "invalid_client", "aud must be the token endpoint {aud}"),
    "expired": (400, "invalid_client", "client_assertion has expired"),
    "signature": (400, "invalid_client", "client_assertion signature does not verify"),
    "invalid": (400, "invalid_client", "invalid client_assertion: {exc}"),
    "iss_sub": (400, "invalid_client", "iss and sub must both be the registered client_id"),
    "client": (400, "invalid_client", "iss and sub must both be the registered client_id"),
    "exp_too_far": (400, "invalid_client", "exp is more than 5 minutes in the future"),
    "jti": (400, "invalid_client", "jti has already been used"),
})


@dataclass(frozen=True)
class AssertionPolicy:
    """What a token endpoint demands of a client assertion.

    ``key_for(kid)`` is the registered verification key for a ``kid`` (a PEM, or a JWK as a dict), None when
    no key matches, or :data:`UNCHECKED` while the client has registered none (signature not checked).
    """

    client_id: Callable[[], str]
    key_for: Callable[[str], Any]
    algorithms: tuple[str, ...] = ("RS512",)
    refusals: Refusals = field(default_factory=lambda: NHS_REFUSALS)
    jwks_url: str | None = None  # when set, a ``jku`` header must name it
    jku_required: bool = False
    max_lifetime_seconds: float = 305.0  # five minutes, with a little clock skew


class Refused(Exception):
    """A client assertion the policy refuses, by refusal name."""

    def __init__(self, refusal: str, **words: Any) -> None:
        super().__init__(refusal)
        self.refusal = refusal
        self.words = words


def refusal_reply(refusals: Refusals, refused: Refused) -> JSONResponse:
    """The OAuth error reply for a refusal."""
    status, error, description = refusals[refused.refusal]
    return JSONResponse({"error": error, "error_description": description.format(**refused.words)},
                        status_code=status)


def verify_assertion(form: FormData, policy: AssertionPolicy, audience: str,
                     used_jti: dict[str, float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a token request's client assertion; returns its header and claims, or raises :class:`Refused`.

    A ``jti`` is remembered only once everything else has passed.
    """
    if form.get("client_assertion_type") != JWT_BEARER:
        raise Refused("assertion_type")
    assertion = str(form.get("client_assertion", ""))
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise Refused("malformed") from exc
    alg = header.get("alg")
    algs = ", ".join(policy.algorithms) if len(policy.algorithms) > 1 else f"'{policy.algorithms[0]}'"
    if alg not in policy.algorithms:
        raise Refused("alg", alg=alg, algs=algs)
    kid = header.get("kid")
    if not kid:
        raise Refused("missing_kid")
    key = policy.key_for(str(kid))
    if key is None:
        raise Refused("unknown_kid")
    if policy.jwks_url is not None:
        if policy.jku_required and not header.get("jku"):
            raise Refused("jku_missing")
        if header.get("jku") and header["jku"] != policy.jwks_url:
            raise Refused("jku")
    options: Any = {"require": REQUIRED_CLAIMS}  # jwt.Options (a TypedDict) with the keys set here
    if key is UNCHECKED:
        options.update(verify_signature=False, verify_aud=True, verify_exp=True)
        key = None
    elif isinstance(key, Mapping):
        key = jwt.PyJWK(dict(key), algorithm=str(alg)).key
    try:
        claims: dict[str, Any] = jwt.decode(assertion, key, algorithms=[str(alg)], audience=audience,
                                            options=options)
    except jwt.InvalidAudienceError as exc:
        raise Refused("aud", aud=audience) from exc
    except jwt.ExpiredSignatureError as exc:
        raise Refused("expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise Refused("signature", exc=exc) from exc
    except jwt.PyJWTError as exc:
        raise Refused("invalid", exc=exc) from exc
    if claims["iss"] != claims["sub"]:
        raise Refused("iss_sub")
    if claims["iss"] != policy.client_id():
        raise Refused("client")
    if float(claims["exp"]) > time.time() + policy.max_lifetime_seconds:
        raise Refused("exp_too_far")
    if claims["jti"] in used_jti:
        raise Refused("jti")
    used_jti[str(claims["jti"])] = float(claims["exp"])
    return header, claims


def rsa_key_pair() -> tuple[str, str]:
    """A new RSA signing key pair (private PEM, public PEM) for a sandbox's test client."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


Issue = Callable[[FormData, dict[str, Any], dict[str, Any]], Response | Awaitable[Response]]


def add_signed_jwt_token_route(app: FastAPI, state: SandboxState, path: str, policy: AssertionPolicy,
                               used_jti: dict[str, float], issue: Issue) -> None:
    """Mount ``POST path``: the ``client_credentials`` grant with a signed client assertion.

    The assertion's ``aud`` must be this endpoint's own URL (as the client reached it). ``issue(form, header,
    claims)`` makes the reply to a request that passed.
    """

    @app.post(path)
    async def token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        try:
            if grant != "client_credentials":
                raise Refused("grant")
            header, claims = verify_assertion(form, policy, str(request.url.replace(query="")), used_jti)
        except Refused as refused:
            return refusal_reply(policy.refusals, refused)
        reply = issue(form, header, claims)
        return await reply if isinstance(reply, Awaitable) else reply
