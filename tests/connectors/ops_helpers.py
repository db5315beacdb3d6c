"""Shared steps of the connector tests over in-process sandboxes: operations (Teams, Cin7, Unleashed, Brightpearl,
UpKeep, Samsara...) and, through ``workforce_helpers``, HR, rota, payroll and small accounting.

Sessions run against the in-process sandbox over ``httpx.ASGITransport`` (real HTTP requests into the ASGI
app), with the manifest's own error rules but short waits so storms finish quickly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from connectors.catalog import load_catalog
from connectors.manifest import Backoff, ConnectorManifest, ErrorRules, RateLimits, load_manifest
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SANDBOXES, SandboxConfig
from engine.mapping import compile_design, load_mapping_template_file
from engine.ports import ReadPage, SourceRecord

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS = ROOT / "templates" / "connectors"
MAPPINGS = ROOT / "templates" / "mappings"


def manifest(connector: str) -> ConnectorManifest:
    """The validated manifest of a connector."""
    return load_manifest(CONNECTORS / f"{connector}.yaml")


def fast_rules(m: ConnectorManifest, **kw: Any) -> ErrorRules:
    """The manifest's rules with short waits."""
    return m.errors.model_copy(update={"backoff": Backoff(base_seconds=0.01, cap_seconds=0.05),
                                       "default_retry_after_seconds": 0.01, "deadline_seconds": 60, **kw})


def sandbox(connector: str, **config: Any) -> FastAPI:
    """A fresh sandbox app from the registry."""
    return SANDBOXES[connector](SandboxConfig(**config))


def session(connector: str, app: FastAPI, config: dict[str, Any], secrets: dict[str, Any],
            **kw: Any) -> ConnectorSession:
    """A connector session talking to ``app`` in process."""
    m = manifest(connector)
    kw.setdefault("error_rules", fast_rules(m))
    kw.setdefault("rate_limits", RateLimits())
    kw.setdefault("transport", httpx.ASGITransport(app=app))
    return ConnectorSession(m, config, secrets, base_url=f"http://{connector}.sandbox",
                            connection_id=f"test-{connector}-{id(app)}", **kw)


async def read_all(s: ConnectorSession, stream: str, checkpoint: dict[str, Any] | None = None,
                   between: Any = None) -> tuple[list[SourceRecord], list[ReadPage]]:
    """Every record of a stream and the pages they came in; ``between(n)`` runs after page n."""
    records: list[SourceRecord] = []
    pages: list[ReadPage] = []
    async for page in s.read(stream, checkpoint):
        pages.append(page)
        records.extend(page.records)
        if between is not None:
            await between(len(pages))
    return records, pages


async def control(app: FastAPI, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the sandbox's control API (faults, tokens)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as c:
        r = await c.post(path, json=body or {})
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out


def storm_starter(app: FastAPI, storm: str, size: int = 6, *, error_status: int = 502, **extra: Any) -> Any:
    """A ``between`` callback that starts a throttling or 5xx storm (of ``error_status``) after the first page."""
    async def start(n: int) -> None:
        if n == 1:
            await control(app, "/_sandbox/faults", {storm: size, "retry_after": "0",
                                                    "error_status": error_status if storm == "storm_5xx" else 500,
                                                    **extra})
    return start


def check_registered(connector: str, catalog_id: str | None = None, *, min_description: int = 6) -> ConnectorManifest:
    """The manifest validates with described fields (``min_description`` characters at least), its sandbox is
    registered and the catalog lists it as available."""
    m = manifest(connector)
    assert m.id == connector and m.availability == "available"
    for name, stream in m.streams.items():
        assert stream.fields, f"{name} has no field schema"
        assert all(len(f.description) >= min_description for f in stream.fields), name
    assert connector in SANDBOXES
    cat = load_catalog(CONNECTORS)
    entry = next(e for e in cat.entries if e.id == (catalog_id or connector))
    assert entry.availability == "available" and entry.connector == connector
    return m


def map_records(connector: str, care_type: str, records: list[SourceRecord],
                stream: str | None = None) -> list[dict[str, Any]]:
    """Compile the mapping template and map records; every record must map without errors."""
    design = load_mapping_template_file(MAPPINGS / connector / f"{care_type}.yaml")
    assert (design.connector, design.care_type) == (connector, care_type)
    if stream is not None:
        assert design.stream == stream
    compiled = compile_design(design)
    out = []
    for r in records:
        mapped = compiled.apply(r.data)
        assert mapped.ok, (r.external_id, mapped.errors)
        out.append(dict(mapped.values))
    return out


class LoseReplies:
    """An ASGI wrapper that lets the vendor process a request, then loses the reply (answers 502).

    The first ``times`` requests matching ``method`` and ``path`` get through to the sandbox (which acts on them)
    and the caller sees a 502 instead of the real answer: the case that duplicates creates without idempotency.
    """

    def __init__(self, app: FastAPI, method: str, path: str, times: int = 1) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.left = times

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != self.method or scope["path"] != self.path or self.left <= 0:
            await self.app(scope, receive, send)
            return
        self.left -= 1

        async def swallow(message: Any) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Bad Gateway"})
