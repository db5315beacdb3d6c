"""Shared steps of the HR, rota, payroll and small-accounting connector tests (Breathe HR, RotaCloud, ...).

The same steps as the operations tests (``ops_helpers``), with two defaults of their own: a 5xx storm answers
503, and a field description need only be present.
"""

from __future__ import annotations

from functools import partial

from .ops_helpers import (
    CONNECTORS,
    MAPPINGS,
    ROOT,
    control,
    fast_rules,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
)
from .ops_helpers import check_registered as _check_registered
from .ops_helpers import storm_starter as _storm_starter

storm_starter = partial(_storm_starter, error_status=503)
check_registered = partial(_check_registered, min_description=1)

__all__ = ["CONNECTORS", "MAPPINGS", "ROOT", "check_registered", "control", "fast_rules", "manifest", "map_records",
           "read_all", "sandbox", "session", "storm_starter"]
