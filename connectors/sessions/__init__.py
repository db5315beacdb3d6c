"""Connectors whose odd part is a whole session, not just an auth or a paginator.

Most connectors run on the plain :class:`~connectors.runtime.ConnectorSession`. A few need Python for
reading or writing itself (a MESH inbox that acknowledges after storing, a FHIR operation with a
``Parameters`` body, files instead of HTTP). :func:`session_class` names the class for a connector id and
:func:`open_session` builds it with the same arguments as ``ConnectorSession``. Importing this module also
registers the custom authenticators those connectors declare (``auth: {type: custom, name: ...}``).
"""

from __future__ import annotations

from typing import Any

from connectors.manifest import ConnectorManifest
from connectors.runtime import ConnectorSession

SESSION_CLASSES: dict[str, type[ConnectorSession]] = {}


def register_session(connector_id: str, cls: type[ConnectorSession]) -> None:
    """Use ``cls`` for every session of ``connector_id``."""
    SESSION_CLASSES[connector_id] = cls


def _load_builtin() -> None:
    import connectors.banking.obie  # noqa: F401  (registers the ``obie`` custom auth)
    from connectors.custom.percipio import PercipioSession
    from connectors.fhir.bars import BarsSession
    from connectors.fhir.gp_connect import GpConnectSession
    from connectors.fhir.scr import ScrSession
    from connectors.files.session import FileExchangeSession
    from connectors.hl7.spool import Hl7SpoolSession
    from connectors.mesh.session import MeshSession

    register_session("mesh", MeshSession)
    register_session("gp_connect", GpConnectSession)
    register_session("nhs_bars", BarsSession)
    register_session("nhs_scr", ScrSession)
    register_session("hl7_lab", Hl7SpoolSession)
    register_session("percipio", PercipioSession)  # asynchronous learning-activity report
    for file_connector in ("sage50_files", "legacy_care_files", "recruitment_files", "taxcalc_files"):
        register_session(file_connector, FileExchangeSession)
    register_session("telemedicine_files", FileExchangeSession)  # consultation report exports
    from connectors.files.grouped import GroupedFileExchangeSession

    register_session("sage_payroll_files", FileExchangeSession)
    for grouped_connector in ("sage_tax_files", "invoicing_files", "tradegecko_files"):
        register_session(grouped_connector, GroupedFileExchangeSession)
    for file_connector in ("maintenance_connection_files", "mpulse_files"):
        register_session(file_connector, FileExchangeSession)
    from connectors.xmlfeeds.sessions import IndeedSession, JaggaerFilesSession

    register_session("indeed", IndeedSession)
    register_session("jaggaer_files", JaggaerFilesSession)


def session_class(connector_id: str) -> type[ConnectorSession]:
    """The session class for a connector (``ConnectorSession`` unless one is registered)."""
    if not SESSION_CLASSES:
        _load_builtin()
    return SESSION_CLASSES.get(connector_id, ConnectorSession)


def open_session(manifest: ConnectorManifest, config: Any, secrets: Any, **kwargs: Any) -> ConnectorSession:
    """A session of the right class for ``manifest`` (same arguments as ``ConnectorSession``)."""
    return session_class(manifest.id)(manifest, config, secrets, **kwargs)


_load_builtin()
