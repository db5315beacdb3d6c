"""WriteCareNotes care types: the target side of every mapping."""

from engine.caretypes.catalog import CARE_TYPES, UnknownCareTypeError, get_care_type
from engine.caretypes.model import CareField, CareType, FieldType, Sensitivity

__all__ = [
    "CARE_TYPES",
    "CareField",
    "CareType",
    "FieldType",
    "Sensitivity",
    "UnknownCareTypeError",
    "get_care_type",
]
