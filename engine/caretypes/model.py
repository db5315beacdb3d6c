"""The shape of a WriteCareNotes care type: fields with a type, a plain-English description and a sensitivity."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Sensitivity(StrEnum):
    """How carefully a field's value must be handled (masking in logs, errors and previews)."""

    NONE = "none"
    PERSONAL = "personal"
    HEALTH = "health"  # special category data under UK GDPR
    FINANCIAL = "financial"


class FieldType(StrEnum):
    """Value types of care-type fields; also the ``dataType`` of a field mapping."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"  # ISO 8601 date, YYYY-MM-DD
    DATETIME = "datetime"  # ISO 8601 date-time with an offset
    PENCE = "pence"  # money as an integer number of pence
    CURRENCY = "currency"  # ISO 4217 code, e.g. GBP
    EMAIL = "email"
    PHONE = "phone"  # E.164
    POSTCODE = "postcode"
    NHS_NUMBER = "nhs_number"
    NI_NUMBER = "ni_number"
    SORT_CODE = "sort_code"
    ACCOUNT_NUMBER = "account_number"
    ODS_CODE = "ods_code"
    SNOMED_CODE = "snomed_code"
    URL = "url"
    REFERENCE = "reference"  # id of another care record or an external id
    OBJECT = "object"
    LIST = "list"


class CareField(BaseModel):
    """One field of a care type. ``item_fields`` describes an object's fields (or a list's items)."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: FieldType
    description: str
    sensitivity: Sensitivity = Sensitivity.NONE
    required: bool = False
    allowed_values: tuple[str, ...] | None = None
    item_fields: tuple[CareField, ...] | None = None
    item_type: FieldType | None = None  # for lists of scalars

    def child(self, name: str) -> CareField | None:
        """The nested field called ``name`` (for objects and lists of objects), if any."""
        for f in self.item_fields or ():
            if f.name == name:
                return f
        return None


class CareType(BaseModel):
    """A WriteCareNotes data type, anchored to a FHIR R4 resource or a UK domain standard."""

    model_config = ConfigDict(frozen=True)

    name: str
    fhir_anchor: str
    description: str
    fields: tuple[CareField, ...] = Field(default_factory=tuple)

    def field(self, path: str) -> CareField | None:
        """Look a field up by dotted path (``address.postcode``; list items by ``lines.description``)."""
        parts = path.split(".")
        current: CareField | None = next((f for f in self.fields if f.name == parts[0]), None)
        for part in parts[1:]:
            if current is None:
                return None
            current = current.child(part)
        return current

    def field_paths(self) -> list[str]:
        """Every addressable field path, nested ones included (``address``, ``address.postcode``...)."""
        out: list[str] = []

        def walk(prefix: str, fields: tuple[CareField, ...]) -> None:
            for f in fields:
                path = f"{prefix}{f.name}"
                out.append(path)
                if f.item_fields:
                    walk(path + ".", f.item_fields)

        walk("", self.fields)
        return out
