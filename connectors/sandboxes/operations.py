"""Sandboxes of the operations connectors (communication, inventory, maintenance, transport, procurement).

Kept in one small registry merged into :data:`connectors.sandboxes.SANDBOXES`, so adding one of these
vendors never touches the shared registry file.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from connectors.sandboxes import (
    brightpearl,
    cin7,
    coupa,
    fiix,
    microsoft_teams,
    samsara,
    unleashed,
    upkeep,
    verizon_connect,
    webfleet,
    whatsapp_business,
    zoom,
)
from connectors.sandboxes.common import SandboxConfig

OPERATIONS_SANDBOXES: dict[str, Callable[[SandboxConfig], FastAPI]] = {
    "microsoft_teams": microsoft_teams.create_app,
    "cin7": cin7.create_app,
    "unleashed": unleashed.create_app,
    "brightpearl": brightpearl.create_app,
    "upkeep": upkeep.create_app,
    "fiix": fiix.create_app,
    "samsara": samsara.create_app,
    "webfleet": webfleet.create_app,
    "zoom": zoom.create_app,
    "whatsapp_business": whatsapp_business.create_app,
    "coupa": coupa.create_app,
    "verizon_connect": verizon_connect.create_app,
}
