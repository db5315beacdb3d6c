"""Compile a :class:`MappingDesign` once into closures, then map records fast (no pydantic per record)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.caretypes import CareField, CareType, FieldType, Sensitivity, get_care_type
from engine.caretypes.catalog import UnknownCareTypeError
from engine.mapping.errors import MappingError, StepError
from engine.mapping.functions import FunctionSpec, Step, build_step
from engine.mapping.models import (
    DataFilter,
    FieldMapping,
    FilterOperator,
    MappingDesign,
    RuleKind,
)
from engine.mapping.paths import PathPart, is_plain_path, make_getter, parse_path, set_path
from engine.mapping.sandbox import CompiledExpression
from engine.mapping.validation import MASKED, Check, allowed_check, order_key, rule_check, show, type_check

MAX_MAPPINGS = 500
# Steps whose output always has these types: the type check after them is redundant.
_GUARANTEES: dict[str, frozenset[FieldType]] = {
    "to_date": frozenset({FieldType.DATE}),
    "to_datetime": frozenset({FieldType.DATETIME}),
    "pounds_to_pence": frozenset({FieldType.PENCE, FieldType.INTEGER, FieldType.NUMBER}),
    "add_vat": frozenset({FieldType.PENCE, FieldType.INTEGER, FieldType.NUMBER}),
    "remove_vat": frozenset({FieldType.PENCE, FieldType.INTEGER, FieldType.NUMBER}),
    "to_integer": frozenset({FieldType.INTEGER, FieldType.PENCE, FieldType.NUMBER}),
    "to_number": frozenset({FieldType.NUMBER}),
    "postcode": frozenset({FieldType.POSTCODE, FieldType.STRING}),
    "ni_number": frozenset({FieldType.NI_NUMBER, FieldType.STRING}),
    "nhs_number": frozenset({FieldType.NHS_NUMBER, FieldType.STRING}),
    "phone_e164": frozenset({FieldType.PHONE, FieldType.STRING}),
    "sort_code": frozenset({FieldType.SORT_CODE, FieldType.STRING}),
    "account_number": frozenset({FieldType.ACCOUNT_NUMBER, FieldType.STRING}),
    "to_text": frozenset({FieldType.STRING, FieldType.TEXT, FieldType.REFERENCE}),
    "upper": frozenset({FieldType.STRING, FieldType.TEXT}),
    "lower": frozenset({FieldType.STRING, FieldType.TEXT}),
    "title_case": frozenset({FieldType.STRING, FieldType.TEXT}),
    "to_boolean": frozenset({FieldType.BOOLEAN}),
    "template": frozenset({FieldType.STRING, FieldType.TEXT}),
}
# A value of exactly this Python type passes the type check without calling it.
_FAST_TYPES: dict[FieldType, type] = {
    FieldType.STRING: str, FieldType.TEXT: str, FieldType.REFERENCE: str, FieldType.INTEGER: int,
    FieldType.PENCE: int, FieldType.BOOLEAN: bool,
}
MAX_STEPS = 20


@dataclass(slots=True)
class FieldError:
    """One problem with one field of one record, in plain English (sensitive values masked)."""

    field: str
    message: str
    code: str
    value: str | None = None  # the offending value as shown to people (masked when sensitive)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"field": self.field, "message": self.message, "code": self.code, "value": self.value}


@dataclass(slots=True)
class MappedRecord:
    """The care-type values mapped from one source record, the field errors, or why it was skipped."""

    values: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    skipped_reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the record was mapped without errors and not skipped."""
        return not self.errors and self.skipped_reason is None


@dataclass(frozen=True, slots=True)
class TargetInfo:
    """What the compiler knows about a target field."""

    path: str
    type: FieldType | None
    sensitivity: Sensitivity
    description: str
    allowed_values: tuple[str, ...] | None


def resolve_target(care_type: CareType, path: str) -> TargetInfo:
    """Find ``path`` in ``care_type``; free-form children of an object without declared fields are allowed."""
    parts = path.split(".")
    fields = care_type.fields
    current: CareField | None = None
    for i, part in enumerate(parts):
        current = next((f for f in fields if f.name == part), None)
        if current is None:
            known = ", ".join(care_type.field_paths())
            raise MappingError(f"{path!r} is not a field of {care_type.name}; its fields are: {known}")
        if current.item_fields is None and i < len(parts) - 1:
            if current.type is FieldType.OBJECT:
                return TargetInfo(path, None, current.sensitivity, current.description, None)
            raise MappingError(f"{'.'.join(parts[: i + 1])!r} of {care_type.name} has no fields inside it")
        fields = current.item_fields or ()
    assert current is not None
    return TargetInfo(path, current.type, current.sensitivity, current.description, current.allowed_values)


@dataclass(slots=True)
class _Plan:
    target: str
    parts: tuple[PathPart, ...]
    key: str | None  # top-level key when the target is not nested
    read: Callable[[Mapping[str, Any]], Any]
    steps: tuple[tuple[Step, bool], ...]
    default: Any
    required: bool
    checks: tuple[tuple[Check, str], ...]
    sensitive: bool
    fast_type: type | None = None  # when set and type(value) is it, ``checks`` can be skipped

    def row(self) -> tuple[Any, ...]:
        """The plan flattened into a tuple for the hot loop (attribute lookups cost)."""
        k2 = self.parts if len(self.parts) == 2 else None
        return (self.read, self.steps, self.default, self.required, self.checks, self.fast_type,
                self.key, k2, self)


@dataclass(frozen=True, slots=True)
class _Reverse:
    target_getter: Callable[[Mapping[str, Any]], Any]
    source_parts: tuple[PathPart, ...]
    steps: tuple[tuple[Step, bool], ...]
    target: str


def _filter_fn(f: DataFilter) -> Callable[[Mapping[str, Any]], str | None]:
    get = make_getter(f.field) if is_plain_path(f.field) else CompiledExpression(f.field).search
    op, expected = f.operator, f.value
    if op in (FilterOperator.IN, FilterOperator.NOT_IN) and not isinstance(expected, list):
        raise MappingError(f"the filter on {f.field} needs a list of values")

    def test(v: Any) -> bool:
        if op is FilterOperator.EQUALS:
            return bool(v == expected)
        if op is FilterOperator.NOT_EQUALS:
            return bool(v != expected)
        if op is FilterOperator.IN:
            return v in expected
        if op is FilterOperator.NOT_IN:
            return v not in expected
        if op is FilterOperator.EXISTS:
            return v is not None and v != ""
        if op is FilterOperator.MISSING:
            return v is None or v == ""
        if op is FilterOperator.CONTAINS:
            return isinstance(v, (str, list)) and expected in v
        try:
            if op is FilterOperator.GT:
                return bool(v > expected)
            if op is FilterOperator.GTE:
                return bool(v >= expected)
            if op is FilterOperator.LT:
                return bool(v < expected)
            return bool(v <= expected)
        except TypeError:
            return False

    words = {
        "equals": "is", "not_equals": "is not", "in": "is one of", "not_in": "is not one of", "exists": "is filled in",
        "missing": "is empty", "contains": "contains", "gt": "is more than", "gte": "is at least",
        "lt": "is less than", "lte": "is at most",
    }[op.value]
    wanted = "" if op in (FilterOperator.EXISTS, FilterOperator.MISSING) else f" {expected!r}"

    def run(record: Mapping[str, Any]) -> str | None:
        try:
            v = get(record)
        except StepError:
            v = None
        if test(v):
            return None
        if f.description:
            return f"left out: {f.description}"
        return f"left out because {f.field} is {v!r}; only records where {f.field} {words}{wanted} are synced"

    return run


class CompiledDesign:
    """A design compiled once. :meth:`apply` maps a source record; :meth:`reverse` maps back."""

    def __init__(self, design: MappingDesign, care_type: CareType) -> None:
        self.design = design
        self.care_type = care_type
        self.targets: dict[str, TargetInfo] = {}
        self.one_way_fields: dict[str, str] = {}
        self._plans: list[_Plan] = []
        self._filters: list[Callable[[Mapping[str, Any]], str | None]] = []
        self._rules: list[tuple[list[Callable[[Mapping[str, Any]], str | None]], list[tuple[tuple[PathPart, ...], Any]], bool, str]] = []
        self._order: list[tuple[str, str, bool, bool]] = []  # (field, other, field_after_other, sensitive)
        self._reverse: list[_Reverse] = []
        self._rows: list[tuple[Any, ...]] = []
        self._compile()

    # ------------------------------------------------------------------ compile
    def _compile(self) -> None:
        d = self.design
        if len(d.mappings) > MAX_MAPPINGS:
            raise MappingError(f"a design may have at most {MAX_MAPPINGS} field mappings")
        seen: set[str] = set()
        for m in d.mappings:
            if m.target_field in seen:
                raise MappingError(f"{m.target_field} is mapped twice; keep one mapping per WriteCareNotes field")
            seen.add(m.target_field)
            try:
                self._compile_mapping(m)
            except MappingError as exc:
                raise MappingError(f"{m.target_field}: {exc}") from None
        self._rows = [p.row() for p in self._plans]
        self._filters = [_filter_fn(f) for f in d.filters]
        for rule in d.transformation_rules:
            conds = [_filter_fn(c) for c in rule.when]
            sets = []
            for target, value in rule.set_values.items():
                info = resolve_target(self.care_type, target)
                self.targets.setdefault(target, info)
                sets.append((tuple(target.split(".")), value))
            self._rules.append((conds, list(sets), rule.skip, rule.name))

    def _compile_mapping(self, m: FieldMapping) -> None:
        info = resolve_target(self.care_type, m.target_field)
        self.targets[m.target_field] = info
        ftype = m.data_type or info.type
        sensitive = info.sensitivity in MASKED
        care_field = self.care_type.field(m.target_field)

        if m.expression:
            read: Callable[[Mapping[str, Any]], Any] = CompiledExpression(m.expression).search
        elif m.source_field:
            read = make_getter(m.source_field) if is_plain_path(m.source_field) else CompiledExpression(m.source_field).search
        else:
            def read(_r: Mapping[str, Any]) -> Any:
                return None

        steps_in = m.steps()
        if len(steps_in) > MAX_STEPS:
            raise MappingError(f"at most {MAX_STEPS} transformation steps per field")
        built: list[tuple[FunctionSpec, dict[str, Any], Step]] = [build_step(s.function, s.args) for s in steps_in]
        steps = tuple((step, spec.passes_none) for spec, _a, step in built)

        checks: list[tuple[Check, str]] = []
        guaranteed = bool(built) and ftype is not None and ftype in _GUARANTEES.get(built[-1][0].name, frozenset())
        if ftype is not None and not guaranteed:
            checks.append((type_check(ftype), "type"))
        allowed = info.allowed_values
        if allowed:
            checks.append((allowed_check(allowed), "allowed_values"))
        required = m.required or bool(care_field and care_field.required)
        for rule in m.validation_rules:
            if rule.rule is RuleKind.REQUIRED:
                required = True
            elif rule.rule in (RuleKind.AFTER, RuleKind.BEFORE):
                if not rule.field:
                    raise MappingError("a date-order rule needs the other field")
                resolve_target(self.care_type, rule.field)
                self._order.append((m.target_field, rule.field, rule.rule is RuleKind.AFTER, sensitive))
            else:
                c = rule_check(rule)
                if c is not None:
                    checks.append((c, rule.rule.value))

        parts = tuple(m.target_field.split("."))
        only_type_check = len(checks) == 1 and checks[0][1] == "type"
        fast_type = _FAST_TYPES.get(ftype) if (ftype is not None and (only_type_check or guaranteed)) else None
        if guaranteed and not checks:
            fast_type = None
        self._plans.append(_Plan(
            target=m.target_field, parts=parts, key=parts[0] if len(parts) == 1 else None, read=read, steps=steps,
            default=m.default_value, required=required, checks=tuple(checks), sensitive=sensitive, fast_type=fast_type,
        ))
        self._compile_reverse(m, built)

    def _compile_reverse(self, m: FieldMapping, built: list[tuple[FunctionSpec, dict[str, Any], Step]]) -> None:
        if not m.bidirectional:
            self.one_way_fields[m.target_field] = "set to one-way (WriteCareNotes does not write it back)"
            return
        if m.expression or not m.source_field or not is_plain_path(m.source_field):
            self.one_way_fields[m.target_field] = "uses an advanced expression, which cannot be written back"
            return
        inverse_steps: list[tuple[Step, bool]] = []
        for spec, args, _step in reversed(built):
            inv = spec.inverse(args) if spec.inverse else None
            if inv is None:
                self.one_way_fields[m.target_field] = (
                    f"the {spec.name.replace('_', ' ')} step cannot be undone, so changes cannot be written back"
                )
                return
            name, inv_args = inv
            if name == "identity":
                continue
            ispec, _ia, istep = build_step(name, inv_args)
            inverse_steps.append((istep, ispec.passes_none))
        self._reverse.append(_Reverse(
            target_getter=make_getter(m.target_field), source_parts=parse_path(m.source_field),
            steps=tuple(inverse_steps), target=m.target_field,
        ))

    # ------------------------------------------------------------------ run
    def _error(self, plan_target: str, sensitive: bool, value: Any, problem: str, code: str) -> FieldError:
        shown = show(value, sensitive) if value is not None else None
        where = f"{self.care_type.name} {plan_target}"
        msg = f"{where}: {shown} {problem}" if shown is not None else f"{where}: {problem}"
        return FieldError(plan_target, msg, code, shown)

    def apply(self, record: Mapping[str, Any]) -> MappedRecord:
        """Map one source record into care-type values, honouring filters and rules."""
        for flt in self._filters:
            reason = flt(record)
            if reason is not None:
                return MappedRecord({}, [], reason)
        values: dict[str, Any] = {}
        errors: list[FieldError] = []
        for read, steps, default, required, checks, fast_type, key, k2, plan in self._rows:
            v = raw = read(record)
            try:
                for fn, passes_none in steps:
                    if passes_none and not v and (v is None or v == ""):
                        continue
                    v = fn(v, record)
            except StepError as exc:
                err = self._error(plan.target, plan.sensitive, None, f"could not be converted: {_masked_text(exc, plan.sensitive)}", "transform")
                err.value = show(raw, plan.sensitive)
                errors.append(err)
                continue
            if v is None or v == "":
                if default is not None:
                    v = default
                else:
                    if required:
                        errors.append(self._error(plan.target, False, None, "is required but the source has no value", "required"))
                    continue
            if checks and type(v) is not fast_type:
                failed = False
                for check, code in checks:
                    problem = check(v)
                    if problem is not None:
                        errors.append(self._error(plan.target, plan.sensitive, v, problem, code))
                        failed = True
                        break
                if failed:
                    continue
            if key is not None:
                values[key] = v
            elif k2 is not None:
                inner = values.get(k2[0])
                if type(inner) is dict:
                    inner[k2[1]] = v
                else:
                    values[k2[0]] = {k2[1]: v}
            else:
                set_path(values, plan.parts, v)
        if self._rules:
            for conds, sets, skip, name in self._rules:
                if all(c(record) is None for c in conds):
                    if skip:
                        return MappedRecord({}, [], f"left out by the rule {name!r}")
                    for parts, value in sets:
                        set_path(values, parts, value)
        if self._order:
            self._check_order(values, errors)
        return MappedRecord(values, errors)

    def _check_order(self, values: dict[str, Any], errors: list[FieldError]) -> None:
        for fld, other, after, sensitive in self._order:
            a, b = _dig(values, fld), _dig(values, other)
            ka, kb = order_key(a), order_key(b)
            if ka is None or kb is None:
                continue
            if len(ka) == 10 or len(kb) == 10:
                ka, kb = ka[:10], kb[:10]
            if (after and ka < kb) or (not after and ka > kb):
                word = "before" if after else "after"
                errors.append(self._error(fld, sensitive, a, f"is {word} {other} ({show(b, sensitive)})", "date_order"))

    def reverse_record(self, care_record: Mapping[str, Any]) -> MappedRecord:
        """Map care-type values back to the source shape for two-way fields; errors per field."""
        out: dict[str, Any] = {}
        errors: list[FieldError] = []
        for r in self._reverse:
            v = r.target_getter(care_record)
            if v is None:
                continue
            try:
                for fn, passes_none in r.steps:
                    if passes_none and not v and (v is None or v == ""):
                        continue
                    v = fn(v, care_record)
            except StepError as exc:
                info = self.targets[r.target]
                sens = info.sensitivity in MASKED
                errors.append(self._error(r.target, sens, None, f"could not be written back: {_masked_text(exc, sens)}", "reverse"))
                continue
            set_path(out, r.source_parts, v)
        return MappedRecord(out, errors)

    def reverse(self, care_record: Mapping[str, Any]) -> dict[str, Any]:
        """Source-shaped values for the two-way fields; raises :class:`ReverseMappingError` on any field error."""
        result = self.reverse_record(care_record)
        if result.errors:
            raise ReverseMappingError(result.errors)
        return result.values

    @property
    def two_way_fields(self) -> list[str]:
        """Target fields that are written back by :meth:`reverse`."""
        return [r.target for r in self._reverse]

    def sensitivity_of(self, target: str) -> Sensitivity:
        """The sensitivity of a mapped target field."""
        info = self.targets.get(target)
        return info.sensitivity if info else Sensitivity.NONE


class ReverseMappingError(MappingError):
    """Some fields could not be written back; ``errors`` says which and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def _masked_text(exc: Exception, sensitive: bool) -> str:
    text = str(exc)
    if not sensitive:
        return text
    # Step errors quote the raw value first ("'9434765976' is not a valid NHS number"): mask it.
    if text.startswith("'") and "' " in text[1:]:
        raw, _, rest = text[1:].partition("' ")
        return f'"{_mask(raw)}" {rest}'
    return "the value could not be read (hidden because it is personal data)"


def _mask(text: str) -> str:
    from engine.mapping.validation import mask

    return mask(text)


def _dig(values: Mapping[str, Any], path: str) -> Any:
    v: Any = values
    for part in path.split("."):
        if not isinstance(v, Mapping):
            return None
        v = v.get(part)
    return v


def compile_design(design: MappingDesign | Mapping[str, Any]) -> CompiledDesign:
    """Validate and compile a design once; raises :class:`MappingError` with a plain-English reason."""
    if not isinstance(design, MappingDesign):
        from pydantic import ValidationError

        try:
            design = MappingDesign.model_validate(design)
        except ValidationError as exc:
            raise MappingError(f"the design is not valid: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from None
    try:
        care_type = get_care_type(design.care_type)
    except UnknownCareTypeError as exc:
        raise MappingError(str(exc)) from None
    return CompiledDesign(design, care_type)
