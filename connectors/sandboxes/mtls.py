"""Real mutual TLS for sandboxes: a throw-away PKI made with ``cryptography`` and a uvicorn server on loopback
that requires a client certificate (``ssl_cert_reqs=CERT_REQUIRED``), for vendors such as ADP whose every call,
the token call included, must present an ADP-signed certificate.
"""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI


@dataclass(frozen=True)
class Pem:
    """A certificate and its private key, PEM encoded."""

    cert: str
    key: str


@dataclass(frozen=True)
class SandboxPki:
    """A CA, a server certificate for 127.0.0.1/localhost and client certificates, all signed by the CA."""

    ca: Pem
    server: Pem
    client: Pem
    stranger: Pem  # a client certificate from another CA (must be refused)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, *,
          ca: bool, server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    elif server:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_test_pki(client_name: str = "carehub-sandbox-client") -> SandboxPki:
    """A fresh CA with a loopback server certificate, a client certificate, and a stranger's certificate."""
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CareHub sandbox test CA")])
    ca_cert = _cert("CareHub sandbox test CA", ca_key, ca_name, ca_key, ca=True)
    out: list[Pem] = []
    for subject, server in (("127.0.0.1", True), (client_name, False)):
        k = _key()
        c = _cert(subject, k, ca_name, ca_key, ca=False, server=server)
        out.append(Pem(c.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(k)))
    other_key = _key()
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
    stranger_key = _key()
    stranger = _cert(client_name, stranger_key, other_name, other_key, ca=False)
    return SandboxPki(ca=Pem(ca_cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(ca_key)),
                   server=out[0], client=out[1],
                   stranger=Pem(stranger.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(stranger_key)))


@contextmanager
def serve_mtls(app: FastAPI, pki: SandboxPki) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 with TLS that requires a client certificate from the test CA;
    yields the base URL (``https://127.0.0.1:<port>``)."""
    with tempfile.TemporaryDirectory(prefix="carehub-mtls-server-") as tmp:
        files = {name: Path(tmp) / name for name in ("server.pem", "server.key", "ca.pem")}
        files["server.pem"].write_text(pki.server.cert)
        files["server.key"].write_text(pki.server.key)
        files["ca.pem"].write_text(pki.ca.cert)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                ssl_certfile=str(files["server.pem"]), ssl_keyfile=str(files["server.key"]),
                                ssl_ca_certs=str(files["ca.pem"]), ssl_cert_reqs=ssl.CERT_REQUIRED)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="mtls-sandbox", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the mTLS sandbox server did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
