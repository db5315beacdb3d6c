"""The designer: drag (or click) source fields onto WriteCareNotes fields, pick transforms, preview, save."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from nicegui import ui

from connectors.errors import ConnectorError
from connectors.manifest import ConnectorManifest
from engine.caretypes import CARE_TYPES
from engine.mapping import (
    FUNCTIONS,
    FieldMapping,
    FilterOperator,
    MappingDesign,
    MappingError,
    PreviewResult,
    Suggestion,
    compile_design,
    explain_design,
    explain_mapping,
    preview,
    suggest_mappings,
)
from engine.mapping import SourceField as SuggestSource
from storage.integrations import (
    InvalidInput,
    NotFound,
    current_designs,
    design_history,
    diff_designs,
    get_integration,
    get_sync_settings,
    record_view,
    restore_mapping_design,
    save_mapping_design,
)
from storage.models import Integration
from storage.ui_queries import current_records_for
from ui.auth import actor
from ui.components import theme
from ui.components.connector_access import manifest, mapping_template, session_for_integration
from ui.components.mapping_state import MappingDraft, TargetField
from ui.components.pushed_samples import pushed_samples
from ui.components.samples import MASKED_SENSITIVITY, first_sample, sample_values, short, source_fields
from ui.components.transforms import (
    OPERATOR_WORDS,
    arg_text,
    example_text,
    filter_sentence,
    filter_value,
    function_options,
    parse_arg,
)
from ui.layout import frame
from ui.services import services

SAMPLE_SIZE = 10


def _load(integration_id: str, stream: str) -> tuple[Integration, list[dict[str, Any]], MappingDesign | None, int]:
    with services().db.session() as session:
        row = get_integration(session, integration_id=integration_id)
        streams = list(get_sync_settings(session, integration_id=integration_id).streams)
        design_row = next((d for d in current_designs(session, integration_id=integration_id) if d.stream == stream),
                          None)
        record_view(session, actor=actor(), integration_id=integration_id, what="samples")
    design = MappingDesign.model_validate(design_row.design) if design_row else None
    return row, streams, design, design_row.version if design_row else 0


async def _samples(row: Integration, stream: str) -> tuple[list[dict[str, Any]], str]:
    """Live sample records, or an empty list and the reason in plain words."""
    pushed = await pushed_samples(row, stream, SAMPLE_SIZE)  # webhook-fed streams: from the webhook inbox
    if pushed is not None:
        return pushed
    try:
        async with session_for_integration(row) as sess:
            records = await sess.sample(stream, SAMPLE_SIZE)
    except ConnectorError as exc:
        return [], f"Could not read sample records from {row.system_name}: {exc}"
    except (LookupError, ValueError) as exc:
        return [], f"Could not read sample records: {exc}"
    return [dict(r.data) for r in records], ""


def _design_dict(draft: MappingDraft) -> dict[str, Any]:
    return draft.to_design().model_dump(by_alias=True, mode="json", exclude_none=True)


@ui.page("/integrations/{integration_id}/design/{stream}")
async def designer_page(integration_id: str, stream: str) -> None:
    """Journey 1's designer for one stream of one integration."""
    theme.apply()
    with frame("Map fields"):
        try:
            row, streams, saved, saved_version = _load(integration_id, stream)
        except NotFound:
            ui.label("That integration does not exist (it may have been deleted).").mark("designer-missing")
            ui.link("See all integrations", "/integrations")
            return
        connector = manifest(row.connector_id)
        if connector is None or stream not in connector.streams:
            ui.label(f"{row.system_name} has no kind of record called '{stream}'.").mark("designer-bad-stream")
            ui.link("Back to the integration", f"/integrations/{row.id}")
            return
        spec = connector.streams[stream]
        care_name = next((s["care_type"] for s in streams if s.get("stream") == stream), None) or spec.care_type
        care_type = CARE_TYPES.get(str(care_name))
        if care_type is None:
            ui.label(f"WriteCareNotes has no data type called '{care_name}'.").mark("designer-bad-care-type")
            return
        samples, sample_problem = await _samples(row, stream)
        draft = MappingDraft(connector=connector.id, stream=stream, care_type=care_type,
                             sources=source_fields(spec.fields, samples), key_field=spec.primary_key)
        if saved is not None:
            draft.load(saved, saved_version)
        Designer(row, connector, streams, draft, samples, sample_problem).build()


class Designer:
    """One designer tab: the board, the explanation, suggestions, preview and versions."""

    def __init__(self, row: Integration, connector: ConnectorManifest, streams: list[dict[str, Any]],
                 draft: MappingDraft, samples: list[dict[str, Any]], sample_problem: str) -> None:
        self.row = row
        self.connector = connector
        self.streams = streams
        self.draft = draft
        self.samples = samples
        self.sample_problem = sample_problem
        self.advanced = False
        self.dragged: str | None = None
        self.rejected: set[tuple[str, str]] = set()
        self.source_index = {s.name: i for i, s in enumerate(draft.sources)}

    # ---------------------------------------------------------------- layout

    def build(self) -> None:
        """Lay the page out."""
        d = self.draft
        title = self.connector.streams[d.stream].title
        with ui.row().classes("items-center justify-between w-full"):
            ui.label(f"{self.row.name}: {title} → {d.care_type.name} in WriteCareNotes").classes(
                "text-lg font-semibold").props("role=heading aria-level=2")
            ui.switch("Advanced", on_change=self._toggle_advanced).props(
                'aria-label="Advanced: show expressions"').mark("advanced-switch")
        if len(self.streams) > 1:
            with ui.row().classes("gap-2 items-center"):
                ui.label("Other data types:")
                for s in self.streams:
                    if s["stream"] != d.stream:
                        ui.link(f"{s['stream'].replace('_', ' ')} → {s['care_type']}",
                                f"/integrations/{self.row.id}/design/{s['stream']}")
        ui.label("Drag a field from the left onto a WriteCareNotes field on the right, or click a field on the left "
                 "and then 'Put here' on the right. Fields marked Required must be filled before you save.")
        template = mapping_template(self.connector.id, d.care_type.name, d.stream)
        if template is not None:
            with ui.row().classes("items-center gap-2"):
                ui.label(f"CareHub has a ready-made mapping for {self.connector.name} {title.lower()}.")
                ui.button("Start from it", icon="auto_fix_high", on_click=lambda: self.use_template(template)).props(
                    "outline no-caps").mark("use-template")
        if self.sample_problem:
            ui.label(self.sample_problem + " You can still map fields; sample values will be missing.").classes(
                "text-amber-900 bg-amber-50 p-2 rounded").props("role=alert").mark("sample-problem")
        with ui.tabs().classes("w-full").props('aria-label="Designer steps"') as tabs:
            map_tab = ui.tab("map", "1. Map fields")
            preview_tab = ui.tab("preview", "2. Preview")
            versions_tab = ui.tab("versions", "Versions")
        with ui.tab_panels(tabs, value=map_tab).classes("w-full"):
            with ui.tab_panel(map_tab):
                self.status_area()
                self.suggestions()
                with ui.element("div").classes("grid grid-cols-1 md:grid-cols-5 gap-4 w-full"):
                    with ui.column().classes("md:col-span-2 gap-2"):
                        ui.label(f"From {self.connector.name}").classes("text-lg font-semibold").props(
                            "role=heading aria-level=3")
                        self.sources_panel()
                    with ui.column().classes("md:col-span-3 gap-2"):
                        ui.label("To WriteCareNotes").classes("text-lg font-semibold").props(
                            "role=heading aria-level=3")
                        self.targets_panel()
                with ui.card().classes("w-full"):
                    ui.label("Which records").classes("text-lg font-semibold").props("role=heading aria-level=3")
                    self.filters_panel()
                with ui.card().classes("w-full"):
                    ui.label("What this mapping does").classes("text-lg font-semibold").props(
                        "role=heading aria-level=3")
                    self.explanation()
            with ui.tab_panel(preview_tab):
                self.preview_panel()
            with ui.tab_panel(versions_tab):
                self.versions_panel()
        self.save_bar()

    # ---------------------------------------------------------------- state changes

    def changed(self) -> None:
        """Redraw everything that depends on the draft."""
        self.sources_panel.refresh()
        self.targets_panel.refresh()
        self.explanation.refresh()
        self.status_area.refresh()
        self.suggestions.refresh()
        self.versions_panel.refresh()
        self.filters_panel.refresh()

    def _toggle_advanced(self, e: Any) -> None:
        self.advanced = bool(e.value)
        self.targets_panel.refresh()

    def use_template(self, template: MappingDesign) -> None:
        """Replace the draft's mappings with the ready-made ones (nothing is saved until Save)."""
        version = self.draft.base_version
        self.draft.load(template)
        self.draft.base_version = version
        self.draft.dirty = True
        ui.notify("Ready-made mapping loaded: check it, preview it, then save.", type="info")
        self.changed()

    def click_source(self, name: str) -> None:
        """First half of click-to-map."""
        self.draft.select_source(name)
        self.sources_panel.refresh()
        self.targets_panel.refresh()

    def drop(self, target: str, args: Any = None) -> None:
        """A source field was dropped on ``target`` (the browser sends the source's index)."""
        name = self._source_from(args) or self.dragged
        self.dragged = None
        if name is None:
            return
        self.draft.map(name, target)
        self.changed()

    def _source_from(self, args: Any) -> str | None:
        if isinstance(args, str) and args.startswith("src:"):
            try:
                return self.draft.sources[int(args[4:])].name
            except (ValueError, IndexError):
                return None
        return None

    def put_here(self, target: str) -> None:
        """Second half of click-to-map."""
        if self.draft.click_target(target) is None:
            ui.notify("First click a field on the left, then 'Put here'.", type="info")
            return
        self.changed()

    def unmap(self, target: str) -> None:
        """Empty one target field."""
        self.draft.unmap(target)
        self.changed()

    # ---------------------------------------------------------------- panels

    @ui.refreshable_method
    def status_area(self) -> None:
        """Required fields still unmapped, and whether the design compiles."""
        missing = self.draft.missing_required()
        with ui.column().classes("w-full gap-1").props("aria-live=polite"):
            if missing:
                ui.label(f"Still needed before you can save: {', '.join(t.label for t in missing)}.").classes(
                    "text-red-800 font-medium").mark("required-missing")
            else:
                ui.label("Every required field is filled.").classes("text-green-900").mark("required-ok")
            problem = self.compile_problem()
            if problem:
                ui.label(f"Check this: {problem}").classes("text-red-800").props("role=alert").mark("compile-problem")

    def compile_problem(self) -> str:
        """Why the draft does not compile, in the engine's plain words ('' when it does)."""
        try:
            compile_design(self.draft.to_design())
        except MappingError as exc:
            return str(exc)
        return ""

    @ui.refreshable_method
    def suggestions(self) -> None:
        """Suggested matches, accepted one by one or all at once."""
        d = self.draft
        found = suggest_mappings([SuggestSource(s.name, sample_values(self.samples, s.name)) for s in d.sources],
                                 d.care_type)
        open_ = [s for s in found if s.target not in d.mappings and d.target(s.target) is not None
                 and (s.source, s.target) not in self.rejected]
        if not open_:
            return
        with ui.expansion(f"Suggested matches ({len(open_)})", icon="tips_and_updates", value=True).classes(
                "w-full bg-blue-50").mark("suggestions"):
            for sug in open_:
                tgt = d.target(sug.target)
                label = tgt.label if tgt else sug.target
                with ui.row().classes("items-center gap-2 w-full"):
                    ui.label(f"{sug.source} → {label}").classes("font-medium")
                    ui.label(f"({int(sug.confidence * 100)}% sure: {sug.reason})").classes("text-sm text-slate-700")
                    aria(ui.button("Accept", on_click=lambda s=sug: self.accept(s)).props("flat dense no-caps"),
                         f"Accept {sug.source} to {label}").mark(f"accept:{sug.target}")
                    aria(ui.button("Dismiss", on_click=lambda s=sug: self.dismiss(s.source, s.target)).props(
                        "flat dense no-caps"), f"Dismiss {sug.source} to {label}")
            ui.button("Accept all suggestions", icon="done_all",
                      on_click=lambda: self.accept_all(open_)).props("no-caps").mark("accept-all")

    def accept(self, sug: Suggestion) -> None:
        """Take one suggestion."""
        self._accept(sug)
        self.changed()

    def accept_all(self, sugs: list[Suggestion]) -> None:
        """Take every open suggestion."""
        for s in sugs:
            self._accept(s)
        self.changed()

    def _accept(self, sug: Suggestion) -> None:
        tgt = self.draft.target(sug.target)
        self.draft.accept(FieldMapping(source_field=sug.source, target_field=sug.target,
                                       transformation=list(sug.transformation), required=bool(tgt and tgt.required)))

    def dismiss(self, source: str, target: str) -> None:
        """Hide a suggestion for this visit."""
        self.rejected.add((source, target))
        self.suggestions.refresh()

    @ui.refreshable_method
    def sources_panel(self) -> None:
        """Source fields: draggable, clickable, with a live sample value."""
        d = self.draft
        with aria(ui.column().classes("w-full gap-1").props("role=list"), f"Fields from {self.connector.name}"):
            for s in d.sources:
                idx = self.source_index[s.name]
                selected = d.selected_source == s.name
                used = d.targets_of(s.name)
                with ui.element("div").classes(
                        "w-full rounded border p-2 cursor-grab bg-white hover:bg-teal-50 "
                        + ("ring-4 ring-teal-700 " if selected else "")).props(
                        f'role=listitem draggable=true data-testid="src-{idx}"').mark(f"src:{s.name}") as chip:
                    chip.on("dragstart", lambda _e, n=s.name: self._dragstart(n),
                            js_handler=f"(e) => {{ e.dataTransfer.setData('text/plain', 'src:{idx}'); "
                                       "e.dataTransfer.effectAllowed = 'copy'; emit(); }")
                    with ui.row().classes("items-center justify-between w-full no-wrap gap-2"):
                        pick = ui.button(s.name, icon="drag_indicator", on_click=lambda n=s.name: self.click_source(n))
                        pick.props("flat dense no-caps align=left").classes("font-mono text-left").mark(f"pick:{s.name}")
                        pick.props["aria-pressed"] = "true" if selected else "false"
                        aria(pick, f"Choose {s.name}")
                        ui.label(first_sample(self.samples, s)).classes("text-sm text-slate-700 truncate").props(
                            'title="Sample value"')
                    ui.label(s.description).classes("text-xs text-slate-700")
                    if used:
                        ui.label("Used for: " + ", ".join(self._label(t) for t in used)).classes(
                            "text-xs text-teal-900")

    def _dragstart(self, name: str) -> None:
        self.dragged = name

    def _label(self, path: str) -> str:
        t = self.draft.target(path)
        return t.label if t else path

    @ui.refreshable_method
    def targets_panel(self) -> None:
        """Care-type fields: drop zones with descriptions, required flags, transforms."""
        d = self.draft
        with ui.column().classes("w-full gap-2").props('role=list aria-label="WriteCareNotes fields"'):
            for t in d.targets:
                if t.path.startswith("externalRefs"):
                    continue
                self._target_row(t)

    def _target_row(self, t: TargetField) -> None:
        d = self.draft
        mapping = d.mappings.get(t.path)
        missing = t.required and mapping is None
        border = "border-red-700 border-2" if missing else ("border-teal-700" if mapping else "border-slate-300")
        with ui.element("div").classes(f"w-full rounded border p-2 bg-white {border}").props(
                "role=listitem").mark(f"tgt:{t.path}") as zone:
            zone.props["data-testid"] = f"tgt-{t.path}"
            aria(zone, t.label)
            zone.on("dragover.prevent", js_handler="(e) => { e.dataTransfer.dropEffect = 'copy'; "
                                                   "e.currentTarget.classList.add('bg-teal-50'); }")
            zone.on("dragleave", js_handler="(e) => e.currentTarget.classList.remove('bg-teal-50')")
            zone.on("drop", lambda e, p=t.path: self.drop(p, e.args),
                    js_handler="(e) => { e.preventDefault(); e.currentTarget.classList.remove('bg-teal-50'); "
                               "emit(e.dataTransfer.getData('text/plain')); }")
            with ui.row().classes("items-center justify-between w-full no-wrap gap-2"):
                with ui.row().classes("items-center gap-2"):
                    ui.label(t.label).classes("font-semibold")
                    ui.label(t.type.replace("_", " ")).classes("text-xs text-slate-700")
                    if t.required:
                        ui.label("Required" + (": not mapped yet" if missing else "")).classes(
                            "text-xs font-semibold " + ("text-red-800" if missing else "text-slate-700")).mark(
                            f"required:{t.path}")
                if d.selected_source is not None:
                    aria(ui.button("Put here", icon="call_received", on_click=lambda p=t.path: self.put_here(p)).props(
                        "dense no-caps"), f"Put {d.selected_source} into {t.label}").mark(f"put:{t.path}")
            ui.label(t.description).classes("text-sm text-slate-700")
            if mapping is not None:
                self._mapped(t, mapping)
            elif d.selected_source is None:
                ui.label("Drop a field here").classes("text-sm italic text-slate-700")
            if self.advanced or (mapping is None and t.required):
                self._fixed_value(t, mapping)
            if self.advanced:
                ui.input("Expression (JMESPath over the whole source record)",
                         value=mapping.expression if mapping and mapping.expression else "",
                         on_change=lambda e, p=t.path: self._set_expression(p, e.value)).props(
                    "dense debounce=600").classes("w-full font-mono").mark(f"expr:{t.path}")

    def _fixed_value(self, t: TargetField, mapping: Any) -> None:
        value = "" if mapping is None or mapping.default_value is None else str(mapping.default_value)
        if t.allowed_values:
            ui.select({"": "(none)", **{v: v for v in t.allowed_values}}, value=value if value else "",
                      label="Or always use", on_change=lambda e, p=t.path: self._set_default(p, e.value)).props(
                "dense").classes("w-64").mark(f"fixed:{t.path}")
        else:
            ui.input("Or always use this value", value=value,
                     on_change=lambda e, p=t.path: self._set_default(p, e.value)).props(
                "dense debounce=600").classes("w-64").mark(f"fixed:{t.path}")

    def _set_default(self, target: str, value: Any) -> None:
        self.draft.set_default(target, value or "")
        self.changed()

    def _set_expression(self, target: str, value: Any) -> None:
        self.draft.set_expression(target, value)
        self.explanation.refresh()
        self.status_area.refresh()

    def _mapped(self, t: TargetField, mapping: Any) -> None:
        src = mapping.source_field
        with ui.row().classes("items-center gap-2 w-full").mark(f"mapped:{t.path}"):
            if src:
                ui.icon("link").classes("text-teal-800")
                ui.label(f"Filled from {src}").classes("font-mono").props("data-testid=mapped-source")
                samples = sample_values(self.samples, src, 1)
                if samples:
                    source_field = self.draft.source(src)
                    sensitive = t.sensitivity in MASKED_SENSITIVITY or bool(
                        source_field and source_field.sensitivity in MASKED_SENSITIVITY)
                    ui.label(f"(e.g. {short(samples[0], sensitive=sensitive)})").classes(
                        "text-sm text-slate-700")
            elif mapping.expression:
                ui.label("Filled by an expression").classes("font-medium")
            else:
                ui.label(f"Always {mapping.default_value}").classes("font-medium")
            aria(ui.button("Remove", icon="link_off", on_click=lambda p=t.path: self.unmap(p)).props("flat dense no-caps"),
                 f"Remove the mapping of {t.label}").mark(f"unmap:{t.path}")
        if src:
            self._transform_picker(t, mapping)
            ui.checkbox(f"Also send changes made in WriteCareNotes back to {self.connector.name}",
                        value=mapping.bidirectional,
                        on_change=lambda e, p=t.path: self._two_way(p, bool(e.value))).mark(f"two-way:{t.path}")

    def _transform_picker(self, t: TargetField, mapping: Any) -> None:
        steps = mapping.steps()
        current = steps[0].function if steps else ""
        options = function_options(self.advanced)
        if current and current not in options:
            options[current] = FUNCTIONS[current].description if current in FUNCTIONS else current
        ui.select(options, value=current, label=f"Change the value for {t.label}", with_input=True,
                  on_change=lambda e, p=t.path: self._pick(p, e.value)).props(
            'dense options-dense aria-label="Transformation"').classes("w-full").mark(f"transform:{t.path}")
        if len(steps) > 1:
            with ui.row().classes("items-center gap-2"):
                ui.label("Then also: " + ", ".join(FUNCTIONS[x.function].description.rstrip(".").lower()
                                                   if x.function in FUNCTIONS else x.function for x in steps[1:])
                         + ".").classes("text-sm").mark(f"more-steps:{t.path}")
                aria(ui.button("Remove these", on_click=lambda p=t.path: self._drop_extra(p)).props(
                    "flat dense no-caps"), f"Remove the extra steps of {t.label}")
        spec = FUNCTIONS.get(current) if current else None
        if spec is None:
            return
        ui.label(example_text(spec)).classes("text-sm text-slate-700").mark(f"example:{t.path}")
        args = dict(steps[0].args) if steps else {}
        for a in spec.args:
            label = a.description + ("" if a.required else " (optional)")
            if a.choices:
                ui.select({str(c): str(c) for c in a.choices}, value=str(args[a.name]) if a.name in args else None,
                          label=label, on_change=lambda e, p=t.path, n=a.name, k=a.type: self._arg(p, n, e.value, k)
                          ).props("dense").classes("w-full")
            else:
                box = ui.input(label, value=arg_text(args.get(a.name), a.type),
                               on_change=lambda e, p=t.path, n=a.name, k=a.type: self._arg(p, n, e.value, k)).props(
                    "dense debounce=600").classes("w-full")
                if a.type == "mapping":
                    box.props('hint="One pair per line or separated by ;, like ACCREC = sales"')

    def _two_way(self, target: str, on: bool) -> None:
        self.draft.set_bidirectional(target, on)
        self.explanation.refresh()
        self.status_area.refresh()

    @ui.refreshable_method
    def filters_panel(self) -> None:
        """Record filters in words, each removable, and a row to add one."""
        d = self.draft
        if not d.filters:
            ui.label("Every record is synced.").mark("no-filters")
        for i, f in enumerate(d.filters):
            with ui.row().classes("items-center gap-2").mark(f"filter-{i}"):
                ui.label(filter_sentence(f.field, f.operator.value, f.value) + ".")
                aria(ui.button("Remove", icon="delete", on_click=lambda i=i: self._remove_filter(i)).props(
                    "flat dense no-caps"), f"Remove the rule: {filter_sentence(f.field, f.operator.value, f.value)}")
        choice: dict[str, Any] = {"field": None, "operator": "equals", "value": ""}
        with ui.row().classes("items-end gap-2 w-full"):
            ui.select({s.name: s.name for s in d.sources}, label="Only records whose",
                      on_change=lambda e: choice.__setitem__("field", e.value)).classes("w-64").mark("filter-field")
            ui.select(OPERATOR_WORDS, value="equals", label="Test",
                      on_change=lambda e: choice.__setitem__("operator", e.value)).classes("w-48").mark("filter-op")
            ui.input("Value (for 'one of': separate with commas)",
                     on_change=lambda e: choice.__setitem__("value", e.value or "")).classes("w-72").mark(
                "filter-value")
            ui.button("Add rule", icon="filter_alt", on_click=lambda: self._add_filter(choice)).props(
                "outline no-caps").mark("add-filter")

    def _add_filter(self, choice: dict[str, Any]) -> None:
        source = self.draft.source(str(choice.get("field") or ""))
        if source is None:
            ui.notify("Choose the field the rule looks at.", type="warning")
            return
        operator = str(choice.get("operator") or "equals")
        try:
            value = filter_value(str(choice.get("value") or ""), operator, source.type)
        except ValueError as exc:
            ui.notify(f"That value does not fit: {exc}", type="warning")
            return
        self.draft.add_filter(source.name, FilterOperator(operator), value)
        self.filters_panel.refresh()
        self.explanation.refresh()

    def _remove_filter(self, index: int) -> None:
        self.draft.remove_filter(index)
        self.filters_panel.refresh()
        self.explanation.refresh()

    def _drop_extra(self, target: str) -> None:
        self.draft.drop_extra_steps(target)
        self.changed()

    def _pick(self, target: str, function: str | None) -> None:
        self.draft.set_transform(target, function or None)
        self.changed()

    def _arg(self, target: str, name: str, text: Any, kind: str) -> None:
        mapping = self.draft.mappings.get(target)
        if mapping is None or not mapping.steps():
            return
        step = mapping.steps()[0]
        try:
            value = parse_arg(str(text or ""), kind)
        except ValueError as exc:
            ui.notify(f"{name}: {exc}", type="warning")
            return
        args = {k: v for k, v in step.args.items() if k != name}
        if value is not None:
            args[name] = value
        self.draft.set_transform(target, step.function, args)
        self.explanation.refresh()
        self.status_area.refresh()

    @ui.refreshable_method
    def explanation(self) -> None:
        """The plain-English paragraph, regenerated on every change."""
        design = self.draft.to_design()
        if not design.mappings:
            ui.label("Nothing is mapped yet.").mark("explanation")
            return
        try:
            text = explain_design(design, connector_label=self.connector.name)
        except (MappingError, KeyError) as exc:
            text = f"(Cannot explain this design yet: {exc})"
        ui.label(text).mark("explanation").props("aria-live=polite")
        with ui.element("ul").classes("list-disc ml-6"):
            for m in design.mappings:
                with ui.element("li"):
                    ui.label(explain_mapping(m, self.connector.name, self.draft.care_type)).classes("text-sm")

    # ---------------------------------------------------------------- preview

    def preview_panel(self) -> None:
        """Before/after on the sample records, errors in place, diff against current care records."""
        ui.label("See what your sample records would look like in WriteCareNotes before anything is written.")
        holder = ui.column().classes("w-full gap-3")

        def run_preview() -> None:
            holder.clear()
            with holder:
                self.render_preview()

        ui.button("Preview on sample records", icon="visibility", on_click=run_preview).props("no-caps").mark(
            "run-preview")

    def render_preview(self) -> None:
        """Compile the draft and show every sample record through it."""
        if not self.samples:
            ui.label(self.sample_problem or "There are no sample records to preview.").props("role=alert").mark(
                "preview-empty")
            return
        try:
            compiled = compile_design(self.draft.to_design())
        except MappingError as exc:
            ui.label(f"The mapping cannot run yet: {exc}").classes("text-red-800").props("role=alert").mark(
                "preview-problem")
            return
        key = self.draft.key_field
        keys = [str(s.get(key)) for s in self.samples if key and s.get(key) is not None]
        with services().db.session() as session:
            current = current_records_for(session, self.row.id, self.draft.stream, keys)
            record_view(session, actor=actor(), integration_id=self.row.id, what="preview")
        result = preview(compiled, self.samples, current, key)
        self._preview_summary(result)
        for n, prow in enumerate(result.rows, start=1):
            self._preview_record(n, prow)

    def _preview_summary(self, result: PreviewResult) -> None:
        ui.label(f"{len(result.rows)} sample records: {result.mapped} map cleanly, {result.with_errors} have problems, "
                 f"{result.skipped} would be skipped.").classes("font-medium").props("role=status").mark(
            "preview-summary")

    def _preview_record(self, n: int, prow: Any) -> None:
        errors = {e.field: e for e in prow.errors}
        changes = {c.field: c for c in prow.diff}
        if prow.skipped_reason:
            state = f"skipped: {prow.skipped_reason}"
        elif prow.is_new:
            state = "new record in WriteCareNotes"
        elif changes:
            state = f"{len(changes)} change{'s' if len(changes) != 1 else ''} to the current record"
        else:
            state = "already up to date"
        with ui.card().classes("w-full").mark(f"preview-record-{n}"):
            ui.label(f"Record {n} ({prow.key or 'no id'}): {state}" + (f"; {len(errors)} problem(s)" if errors else "")
                     ).classes("font-semibold").props("role=heading aria-level=3")
            with ui.element("table").classes("w-full text-sm border-collapse"):
                with ui.element("thead"), ui.element("tr"):
                    for head in ("WriteCareNotes field", f"From {self.connector.name}", "Becomes", "Now in WriteCareNotes",
                                 "Problem"):
                        with ui.element("th").props("scope=col").classes("text-left border-b p-1"):
                            ui.label(head)
                with ui.element("tbody"):
                    for m in self.draft.to_design().mappings:
                        path = m.target_field
                        err = errors.get(path)
                        change = changes.get(path)
                        before = prow.before.get(m.source_field) if m.source_field else None
                        after = prow.after.get(path)
                        now = change.current if change else ("(new)" if prow.is_new else after)
                        cls = "bg-red-50" if err else ("bg-amber-50" if change else "")
                        with ui.element("tr").classes(cls).mark(f"preview-{n}-{path}"):
                            with ui.element("th").props("scope=row").classes("text-left p-1 font-medium"):
                                ui.label(self._label(path))
                            for value in (short(before), short(after), short(now) if now != "(new)" else "(new)"):
                                with ui.element("td").classes("p-1"):
                                    ui.label(value)
                            with ui.element("td").classes("p-1"):
                                if err:
                                    ui.label(f"⚠ {err.message}").classes("text-red-800 font-medium").mark(
                                        f"preview-error-{n}-{path}")
                                elif change:
                                    ui.label("changes").classes("text-amber-900")

    # ---------------------------------------------------------------- versions and saving

    @ui.refreshable_method
    def versions_panel(self) -> None:
        """Saved versions, newest first, with diff against the current draft and restore."""
        d = self.draft
        with services().db.session() as session:
            history = design_history(session, integration_id=self.row.id, stream=d.stream, care_type=d.care_type.name)
        if not history:
            ui.label("No saved versions yet. Save to keep the first one.").mark("no-versions")
            return
        current = _design_dict(d)
        for h in history:
            with ui.card().classes("w-full").mark(f"version-{h.version}"):
                with ui.row().classes("items-center justify-between w-full"):
                    ui.label(f"Version {h.version}" + (" (current)" if h.is_current else "")).classes("font-semibold")
                    ui.label(f"saved {h.created_at:%d %b %Y %H:%M} by {h.created_by or 'unknown'}").classes(
                        "text-sm text-slate-700")
                if h.comment:
                    ui.label(h.comment).classes("text-sm")
                diff = diff_designs(h.design, current)
                lines = self._diff_lines(diff)
                with ui.expansion(f"Differences from what is on screen ({len(lines)})").classes("w-full").mark(
                        f"diff-{h.version}"):
                    for line in lines or ["No differences."]:
                        ui.label(line).classes("text-sm")
                if not h.is_current:
                    ui.button(f"Restore version {h.version}", icon="restore",
                              on_click=lambda v=h.version: self.restore(v)).props("flat no-caps").mark(
                        f"restore-{h.version}")

    def _diff_lines(self, diff: Any) -> list[str]:
        lines: list[str] = []
        for m in diff.added:
            lines.append(f"On screen but not in this version: {self._label(str(m.get('targetField')))}"
                         f" from {m.get('sourceField') or 'a fixed value'}")
        for m in diff.removed:
            lines.append(f"In this version but not on screen: {self._label(str(m.get('targetField')))}"
                         f" from {m.get('sourceField') or 'a fixed value'}")
        for c in diff.changed:
            before, after = c["before"], c["after"]
            lines.append(f"{self._label(str(c['targetField']))}: this version uses {_describe(before)}, "
                         f"on screen {_describe(after)}")
        return lines

    def restore(self, version: int) -> None:
        """Make an old version current again (saved as a new version) and load it."""
        d = self.draft
        with services().db.session() as session:
            row = restore_mapping_design(session, actor=actor(), integration_id=self.row.id, stream=d.stream,
                                         care_type=d.care_type.name, version=version)
            d.load(row.design, row.version)
        ui.notify(f"Version {version} restored as version {d.base_version}.", type="positive")
        self.changed()
        self.versions_panel.refresh()
        self.save_bar.refresh()

    @ui.refreshable_method
    def save_bar(self) -> None:
        """Save (versioned), then go on to ownership."""
        with ui.card().classes("w-full"), ui.row().classes("items-end gap-3 w-full"):
            comment = ui.input("What did you change? (optional)").classes("w-96").mark("save-comment")
            ui.button("Save version", icon="save", on_click=lambda: self.save(comment.value or "")).props(
                "no-caps").mark("save-design")
            ui.button("Next: who owns the data", icon="arrow_forward",
                      on_click=lambda: ui.navigate.to(f"/integrations/{self.row.id}/ownership")).props(
                "flat no-caps").mark("next-ownership")
            ui.label(f"Saved version: {self.draft.base_version}" if self.draft.base_version else "Not saved yet").classes(
                "text-sm text-slate-700").mark("saved-version")

    def save(self, comment: str) -> None:
        """Save the draft as the next version after checking required fields and compiling it."""
        d = self.draft
        missing = d.missing_required()
        if missing:
            ui.notify("Fill these before saving: " + ", ".join(t.label for t in missing), type="warning")
            return
        try:
            with services().db.session() as session:
                row = save_mapping_design(session, actor=actor(), integration_id=self.row.id, design=_design_dict(d),
                                          comment=comment)
                version = row.version
        except InvalidInput as exc:
            reasons = "; ".join(f"{p.field}: {p.reason}" for p in exc.problems) or str(exc)
            ui.notify(f"Not saved: {reasons}", type="negative", multi_line=True)
            return
        d.base_version = version
        d.dirty = False
        ui.notify(f"Saved as version {version}.", type="positive")
        self.versions_panel.refresh()
        self.save_bar.refresh()


def _describe(m: Mapping[str, Any]) -> str:
    src = m.get("sourceField")
    steps = m.get("transformation") or []
    text = f"{src}" if src else ("an expression" if m.get("expression") else f"the fixed value {m.get('defaultValue')}")
    if steps:
        text += " then " + ", ".join(str(s.get("function")) for s in steps)
    return text



E = TypeVar("E", bound=ui.element)


def aria(element: E, label: str) -> E:
    """Give an element an accessible name; set as a prop value, so no text is ever parsed as markup or props."""
    element.props["aria-label"] = label
    return element
