"""The pure mapping engine: designs, the function library, compilation, validation, suggestions, previews."""

from engine.mapping.compiler import (
    CompiledDesign,
    FieldError,
    MappedRecord,
    ReverseMappingError,
    compile_design,
)
from engine.mapping.errors import MappingError, StepError
from engine.mapping.explain import explain_design, explain_mapping, humanise
from engine.mapping.functions import REGISTRY as FUNCTIONS
from engine.mapping.functions import FunctionSpec, get_function
from engine.mapping.hashing import canonical_json, record_hash
from engine.mapping.loader import list_mapping_templates, load_mapping_template, load_mapping_template_file
from engine.mapping.models import (
    DataFilter,
    DataType,
    FieldMapping,
    FilterOperator,
    MappingDesign,
    RuleKind,
    TransformationRule,
    TransformStep,
    ValidationRule,
    mapping_design_json_schema,
)
from engine.mapping.preview import FieldChange, PreviewResult, PreviewRow, preview
from engine.mapping.suggest import SourceField, Suggestion, suggest_mappings
from engine.mapping.validation import mask

__all__ = [
    "FUNCTIONS",
    "CompiledDesign",
    "DataFilter",
    "DataType",
    "FieldChange",
    "FieldError",
    "FieldMapping",
    "FilterOperator",
    "FunctionSpec",
    "MappedRecord",
    "MappingDesign",
    "MappingError",
    "PreviewResult",
    "PreviewRow",
    "ReverseMappingError",
    "RuleKind",
    "SourceField",
    "StepError",
    "Suggestion",
    "TransformStep",
    "TransformationRule",
    "ValidationRule",
    "canonical_json",
    "compile_design",
    "explain_design",
    "explain_mapping",
    "get_function",
    "humanise",
    "list_mapping_templates",
    "load_mapping_template",
    "load_mapping_template_file",
    "mapping_design_json_schema",
    "mask",
    "preview",
    "record_hash",
    "suggest_mappings",
]
