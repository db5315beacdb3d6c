"""Local emulators of vendor APIs (one FastAPI app per vendor) and the registry the web app mounts.

Add a vendor: write ``connectors/sandboxes/<id>.py`` with ``create_app(config) -> FastAPI`` and add it to
:data:`SANDBOXES` under the connector id of its manifest.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from connectors.sandboxes import (
    bamboohr,
    bars,
    breathe_hr,
    brightpay,
    deputy,
    emis_health,
    freeagent,
    gp_connect,
    hmrc_vat,
    kashflow,
    mesh,
    nhs_pds,
    open_banking,
    paychex,
    peoplehr,
    percipio,
    planday,
    procurement,
    quickbooks,
    rotacloud,
    sage,
    scr,
    shiftboard,
    slack,
    smart_fhir,
    staffology,
    when_i_work,
    xero,
)
from connectors.sandboxes.common import Faults, SandboxConfig
from connectors.sandboxes.operations import OPERATIONS_SANDBOXES
from connectors.sandboxes.talent import TALENT_SANDBOXES

SandboxFactory = Callable[[SandboxConfig], FastAPI]

SANDBOXES: dict[str, SandboxFactory] = {
    "xero": xero.create_app,
    "quickbooks": quickbooks.create_app,
    "sage_accounting": sage.create_app,
    "hmrc_vat": hmrc_vat.create_app,
    "breathe_hr": breathe_hr.create_app,
    "rotacloud": rotacloud.create_app,
    "brightpay": brightpay.create_app,
    "staffology": staffology.create_app,
    "freeagent": freeagent.create_app,
    "bamboohr": bamboohr.create_app,
    "deputy": deputy.create_app,
    "nhs_pds": nhs_pds.create_app,
    "slack": slack.create_app,
    "peoplehr": peoplehr.create_app,
    "when_i_work": when_i_work.create_app,
    "planday": planday.create_app,
    "kashflow": kashflow.create_app,
}
SANDBOXES.update(OPERATIONS_SANDBOXES)
SANDBOXES.update(TALENT_SANDBOXES)
SANDBOXES.update({"gp_connect": gp_connect.create_app, "nhs_scr": scr.create_app, "mesh": mesh.create_app,
                  "open_banking": open_banking.create_app})
SANDBOXES.update({"cerner": smart_fhir.create_cerner_app, "epic": smart_fhir.create_epic_app})
SANDBOXES.update({"nhs_bars": bars.create_app})
SANDBOXES.update({"paychex": paychex.create_app, "percipio": percipio.create_app})  # need open_session
SANDBOXES.update({"emis_health": emis_health.create_app})
SANDBOXES.update({"shiftboard": shiftboard.create_app})
SANDBOXES.update({"ariba": procurement.create_ariba_app, "oracle_procurement": procurement.create_oracle_app})


def mount_sandboxes(app: FastAPI, prefix: str = "/sandbox", config: SandboxConfig | None = None,
                    only: list[str] | None = None) -> dict[str, FastAPI]:
    """Mount every registered sandbox at ``{prefix}/{id}``; returns the mounted apps by id."""
    mounted: dict[str, FastAPI] = {}
    for sid, factory in SANDBOXES.items():
        if only is not None and sid not in only:
            continue
        sub = factory(config or SandboxConfig())
        app.mount(f"{prefix}/{sid}", sub)
        mounted[sid] = sub
    return mounted


class LazySandboxes:
    """One ASGI app serving every sandbox at ``/<id>``, each built on its first request.

    Building all ~50 vendor apps costs about a second; the web app mounts this instead so
    start-up (and every UI test, which re-mounts after NiceGUI's reset) pays only for the
    sandboxes actually used.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.router = Router()
        self.apps: dict[str, FastAPI] = {}

    def app_for(self, sid: str) -> FastAPI | None:
        """The sandbox app for ``sid``, built and mounted on first use; None if unknown."""
        if sid not in self.apps:
            factory = SANDBOXES.get(sid)
            if factory is None:
                return None
            self.apps[sid] = factory(self.config)
            self.router.mount(f"/{sid}", self.apps[sid])
        return self.apps[sid]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"}:
            path: str = scope.get("path", "")
            root: str = scope.get("root_path", "")
            relative = path[len(root):] if root and path.startswith(root) else path
            self.app_for(relative.lstrip("/").split("/", 1)[0])
        await self.router(scope, receive, send)


def mount_sandboxes_lazily(app: FastAPI, prefix: str = "/sandbox",
                           config: SandboxConfig | None = None) -> LazySandboxes:
    """Mount every registered sandbox under ``prefix``, each built on its first request."""
    lazy = LazySandboxes(config)
    app.mount(prefix, lazy)
    return lazy


__all__ = ["SANDBOXES", "Faults", "LazySandboxes", "SandboxConfig", "SandboxFactory", "mount_sandboxes",
           "mount_sandboxes_lazily"]
