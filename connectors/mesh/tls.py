"""Mutual TLS for Spine-facing connectors (MESH, GP Connect through the Spine Secure Proxy).

NHS England issues each endpoint a client certificate; the server side trusts only the NHS CA chain.
Credentials hold the PEM texts (``client_cert_pem``, ``client_key_pem`` and optionally ``ca_bundle_pem``);
they are loaded into an :class:`ssl.SSLContext` through short-lived owner-only files, because the ``ssl``
module reads certificate chains from paths only.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.errors import ConnectorError


def client_ssl_context(secrets: Mapping[str, Any]) -> ssl.SSLContext | None:
    """An SSL context trusting ``ca_bundle_pem`` and presenting the client certificate; None when neither is set."""
    cert = str(secrets.get("client_cert_pem") or "")
    key = str(secrets.get("client_key_pem") or "")
    ca = str(secrets.get("ca_bundle_pem") or "")
    if not cert and not ca:
        return None
    if cert and not key:
        raise ConnectorError("a client certificate needs its private key (client_key_pem)")
    ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not cert:
        return ctx  # trust the NHS CA chain only, present no certificate
    with tempfile.TemporaryDirectory(prefix="carehub-tls-") as folder:
        cert_path, key_path = os.path.join(folder, "client.crt"), os.path.join(folder, "client.key")
        for path, text in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(text)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConnectorError(f"the client certificate or key could not be loaded: {exc}") from None
    return ctx


def use_client_certificate(session: Any, secrets: Mapping[str, Any], timeout: float,
                           transport: httpx.AsyncBaseTransport | None) -> None:
    """Give ``session`` (and its authenticator) an HTTP client that presents the client certificate."""
    if transport is not None:
        return  # in-process sandboxes: no TLS at all
    ctx = client_ssl_context(secrets)
    if ctx is None:
        return
    session.client = httpx.AsyncClient(verify=ctx, timeout=timeout)
    session.auth.ctx.client = session.client
