"""Mutual TLS for vendors that require a client certificate on every call (ADP): an ``ssl.SSLContext`` built
from the connection's PEM secrets.

``ssl`` only loads certificate chains from files, so the PEM text is written to a private temporary directory
(mode 0700, files 0600), loaded, and deleted before this function returns; the key never stays on disk.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.errors import AuthFailed
from connectors.manifest import ClientCertificate


def client_ssl_context(spec: ClientCertificate, secrets: Mapping[str, Any]) -> ssl.SSLContext:
    """A client context presenting the connection's certificate, trusting the system CAs plus any extra CA."""
    cert = str(secrets.get(spec.cert_secret) or "")
    key = str(secrets.get(spec.key_secret) or "")
    if "BEGIN CERTIFICATE" not in cert or "PRIVATE KEY" not in key:
        raise AuthFailed("this system needs a client certificate and its private key (PEM) on the connection")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    extra_ca = str(secrets.get(spec.ca_secret) or "") if spec.ca_secret else ""
    if extra_ca:
        ctx.load_verify_locations(cadata=extra_ca)
    with tempfile.TemporaryDirectory(prefix="carehub-mtls-") as tmp:
        cert_path, key_path = Path(tmp) / "client.pem", Path(tmp) / "client.key"
        for path, text in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(text)
        password = secrets.get(spec.key_password_secret) if spec.key_password_secret else None
        try:
            ctx.load_cert_chain(cert_path, key_path, password=str(password) if password else None)
        except (ssl.SSLError, ValueError) as exc:
            raise AuthFailed(f"the client certificate or key could not be loaded: {exc}") from exc
    return ctx
