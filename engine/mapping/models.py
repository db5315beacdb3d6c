"""Pydantic models of a mapping design, as stored and as spoken by the REST API (camelCase aliases)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from engine.caretypes.model import FieldType

DataType = FieldType


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TransformStep(_Model):
    """One named function of the library applied to the value, with its arguments."""

    function: str
    args: dict[str, Any] = Field(default_factory=dict)


class RuleKind(StrEnum):
    """Kinds of validation rule a field mapping can carry."""

    REQUIRED = "required"
    TYPE = "type"
    PATTERN = "pattern"
    RANGE = "range"
    LENGTH = "length"
    ALLOWED_VALUES = "allowed_values"
    AFTER = "after"  # this date/datetime must not be before another target field
    BEFORE = "before"  # this date/datetime must not be after another target field
    IDENTIFIER = "identifier"  # nhs_number, ni_number, postcode, phone, sort_code, account_number...


class ValidationRule(_Model):
    """A check on the mapped (target) value. Unused attributes stay None."""

    rule: RuleKind
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    field: str | None = None  # the other target field for after/before
    identifier: str | None = None
    message: str | None = None  # overrides the generated message


class FieldMapping(_Model):
    """How one care-type field is filled from the source record (the spec's FieldMapping)."""

    source_field: str | None = None  # dotted path, list items by [n]: "Addresses[0].PostalCode"
    target_field: str
    data_type: DataType | None = None  # defaults to the care-type field's type
    transformation: list[TransformStep] = Field(default_factory=list)
    transformation_function: str | None = None  # the spec's single-function shorthand
    expression: str | None = None  # advanced mode: a JMESPath expression over the source record
    validation_rules: list[ValidationRule] = Field(default_factory=list)
    default_value: Any = None
    required: bool = False
    bidirectional: bool = False
    description: str | None = None

    def steps(self) -> list[TransformStep]:
        """The pipeline, with the spec's ``transformationFunction`` shorthand folded in first."""
        if self.transformation_function:
            return [TransformStep(function=self.transformation_function), *self.transformation]
        return list(self.transformation)


class FilterOperator(StrEnum):
    """Comparison a data filter applies to a source field."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    EXISTS = "exists"
    MISSING = "missing"
    CONTAINS = "contains"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


class DataFilter(_Model):
    """Only source records passing every filter are synced; others are skipped with a reason."""

    field: str
    operator: FilterOperator = FilterOperator.EQUALS
    value: Any = None
    description: str | None = None


class TransformationRule(_Model):
    """A record-level rule: when every condition holds, set target values (or skip the record)."""

    name: str
    description: str | None = None
    when: list[DataFilter] = Field(default_factory=list)
    set_values: dict[str, Any] = Field(default_factory=dict)
    skip: bool = False


class MappingDesign(_Model):
    """Everything needed to turn one connector stream's records into one care type, versioned."""

    connector: str
    stream: str
    care_type: str
    mappings: list[FieldMapping]
    filters: list[DataFilter] = Field(default_factory=list)
    transformation_rules: list[TransformationRule] = Field(default_factory=list)
    version: int = 1
    key_field: str | None = None  # source path of the vendor's record id
    description: str | None = None


def mapping_design_json_schema() -> dict[str, Any]:
    """JSON schema of :class:`MappingDesign` in the API's camelCase form."""
    return MappingDesign.model_json_schema(by_alias=True)
