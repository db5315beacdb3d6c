"""Python parts of connectors that the manifest vocabulary cannot express, registered by name.

Importing this package registers them:

* paginators ``json_body`` (offset paging and a ``since`` filter inside a JSON request body: Deputy's
  resource QUERY, BambooHR's custom report) and ``id_list`` (one GET per id from the connection's
  settings: NHS PDS ``/Patient/{nhsNumber}``) and ``rolling_window`` (a date window around today with
  offset paging inside it: RotaCloud shifts, When I Work, Planday);
* auths ``wheniwork_login`` and ``kashflow_session`` (log in, then send a session token);
* auth ``slack_oauth_v2`` (Slack OAuth v2 with token rotation; errors come as HTTP 200 ``ok: false``).
"""

from __future__ import annotations

import connectors.custom.percipio
import connectors.fhir.smart  # noqa: F401  (registers auth smart_backend and paginator fhir_patients)
from connectors.auth import register_auth
from connectors.custom.cornerstone import csod_client_credentials
from connectors.custom.emis_health import PatientNumberPaginator
from connectors.custom.linkedin import RestliBatchIdsPaginator
from connectors.custom.ops_paginators import NextLinkSincePaginator, PathPagePaginator
from connectors.custom.paginators import IdListPaginator, JsonBodyPaginator
from connectors.custom.parent_child import ParentChildPaginator
from connectors.custom.session_logins import kashflow_session, wheniwork_login
from connectors.custom.shiftboard import ShiftboardPagePaginator, shiftboard_signature
from connectors.custom.slack_auth import SlackOAuthV2Authenticator, slack_oauth_v2
from connectors.custom.time_windows import TimeWindowPaginator
from connectors.custom.verizon_connect import VehicleWindowsPaginator, verizon_connect_token
from connectors.custom.windows import RollingWindowPaginator
from connectors.custom.zoom import zoom_account_credentials
from connectors.paginators import register_paginator

register_paginator("json_body", JsonBodyPaginator)
register_paginator("id_list", IdListPaginator)
register_paginator("next_link_since", NextLinkSincePaginator)
register_paginator("path_page", PathPagePaginator)
register_paginator("rolling_window", RollingWindowPaginator)
register_paginator("restli_batch_ids", RestliBatchIdsPaginator)
register_paginator("parent_child", ParentChildPaginator)
register_paginator("time_windows", TimeWindowPaginator)
register_paginator("patient_numbers", PatientNumberPaginator)  # EMIS PAPI: one GET per patientNumber
register_paginator("shiftboard_page", ShiftboardPagePaginator)
register_paginator("vehicle_windows", VehicleWindowsPaginator)
register_auth("csod_client_credentials", csod_client_credentials)
register_auth("slack_oauth_v2", slack_oauth_v2)
register_auth("zoom_account_credentials", zoom_account_credentials)
register_auth("wheniwork_login", wheniwork_login)
register_auth("kashflow_session", kashflow_session)
register_auth("shiftboard_signature", shiftboard_signature)
register_auth("verizon_connect_token", verizon_connect_token)

__all__ = ["IdListPaginator", "JsonBodyPaginator", "RollingWindowPaginator", "SlackOAuthV2Authenticator"]
