"""CLI logic for ``carehub connectors ...`` and ``carehub sandbox ...``.

``app/cli.py`` adds the two Typer sub-apps: ``app.add_typer(connectors_app, name="connectors")`` and
``app.add_typer(sandbox_app, name="sandbox")``. The plain functions below are what the commands call,
so other code (and tests) can use them without a terminal.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import typer
import yaml

from connectors.catalog import default_directory, load_catalog
from connectors.manifest import RateLimits
from connectors.sessions import open_session

connectors_app = typer.Typer(help="Connectors: list the catalog, read a stream.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Local vendor sandboxes.", no_args_is_help=True)


def list_connectors(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """Every catalog entry as a dict (id, name, category, subcategory, method, availability, note)."""
    return load_catalog(directory or default_directory()).as_rows()


def load_connection_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a connection file (YAML or JSON): ``{config: {...}, secrets: {...}}``."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return dict(raw.get("config") or {}), dict(raw.get("secrets") or {})


async def read_records(connector: str, stream: str, *, base_url: str | None, config: dict[str, Any],
                       secrets: dict[str, Any], since: str | None = None, limit: int | None = None,
                       directory: str | Path | None = None, transport: httpx.AsyncBaseTransport | None = None,
                       ignore_rate_limits: bool = False, allow_private: bool = True) -> AsyncIterator[dict[str, Any]]:
    """Yield parsed records of a stream as dicts (``external_id``, ``updated_at``, ``data``).

    Against a CareHub sandbox (``base_url`` given, no tokens in ``secrets``) a token pair is minted from
    the sandbox's ``/_sandbox/tokens`` endpoint, standing in for the browser consent step.
    """
    manifest = load_catalog(directory or default_directory()).get(connector)
    secrets = dict(secrets)
    if base_url and not (secrets.get("access_token") or secrets.get("refresh_token")) and \
            manifest.auth.type == "oauth2_authorization_code":
        async with httpx.AsyncClient(transport=transport) as client:
            resp = await client.post(base_url.rstrip("/") + "/_sandbox/tokens")
            resp.raise_for_status()
            tok = resp.json()
            secrets.update(access_token=tok["access_token"], refresh_token=tok["refresh_token"],
                           expires_at=time.time() + float(tok["expires_in"]))
    session = open_session(manifest, config, secrets, base_url=base_url, transport=transport,
                               connection_id=f"cli:{connector}", allow_private=allow_private,
                               rate_limits=RateLimits() if ignore_rate_limits else None)
    checkpoint = {"since": since} if since else None
    count = 0
    async with session:
        async for page in session.read(stream, checkpoint):
            for rec in page.records:
                yield {"external_id": rec.external_id,
                       "updated_at": rec.updated_at.isoformat() if rec.updated_at else None,
                       "deleted": rec.deleted, "data": rec.data}
                count += 1
                if limit is not None and count >= limit:
                    return


async def print_records(out: IO[str], connector: str, stream: str, **kwargs: Any) -> int:
    """Write records as JSON lines to ``out``; returns how many were written."""
    n = 0
    async for rec in read_records(connector, stream, **kwargs):
        out.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
        n += 1
    return n


@connectors_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
                 directory: Path | None = typer.Option(None, help="Connector templates directory.")) -> None:
    """List every system in the catalog with its integration route."""
    rows = list_connectors(directory)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['id']:<24} {r['availability']:<13} {r['integration_method']:<14} {r['category']}/"
                   f"{r['subcategory']}: {r['name']}")


@connectors_app.command("read")
def read_command(connector: str, stream: str,
                 base_url: str | None = typer.Option(None, "--base-url", help="Override the vendor base URL."),
                 config: Path | None = typer.Option(None, "--config", help="Connection file: {config, secrets}."),
                 since: str | None = typer.Option(None, "--since", help="Only records changed since (ISO)."),
                 limit: int | None = typer.Option(None, "--limit", help="Stop after N records."),
                 ignore_rate_limits: bool = typer.Option(False, help="Do not pace calls (sandboxes only)."),
                 directory: Path | None = typer.Option(None, help="Connector templates directory.")) -> None:
    """Read a stream and print its records as JSON lines."""
    cfg, sec = load_connection_file(config) if config else ({}, {})
    n = asyncio.run(print_records(sys.stdout, connector, stream, base_url=base_url, config=cfg, secrets=sec,
                                  since=since, limit=limit, directory=directory,
                                  ignore_rate_limits=ignore_rate_limits))
    typer.echo(f"{n} records", err=True)


def build_sandbox_server_app(records: int = 250, seed: int = 42) -> Any:
    """A FastAPI app with every sandbox mounted under ``/sandbox/<id>``."""
    from fastapi import FastAPI

    from connectors.sandboxes import SandboxConfig, mount_sandboxes

    app = FastAPI(title="CareHub vendor sandboxes")
    mount_sandboxes(app, "/sandbox", SandboxConfig(seed=seed, records=records))
    return app


@sandbox_app.command("serve")
def serve_command(port: int = typer.Option(8700, "--port"), records: int = typer.Option(250, "--records", max=100_000),
                  seed: int = typer.Option(42, "--seed"), host: str = typer.Option("127.0.0.1", "--host")) -> None:
    """Serve every vendor sandbox at http://HOST:PORT/sandbox/<id>."""
    import uvicorn

    uvicorn.run(build_sandbox_server_app(records, seed), host=host, port=port, log_level="info")
