"""The migration wizard: choose the legacy system, map from a template, dry run with a validation
report and fuzzy matches a person confirms, plan phases, run one, reconcile, then cut over or roll back.

The wizard's step and state live on the MigrationPlan row, so a reload (or another person) resumes
where it was left.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from nicegui import ui
from sqlmodel import Session

from engine.migration.criteria import describe
from engine.migration.legacy import LEGACY_SYSTEMS
from storage import migration_plans as mp
from storage.models import MigrationPhase, MigrationPlan
from ui.auth import actor
from ui.components.ops_common import allowed, attempt, in_session, pct_text
from ui.layout import frame

STEP_TITLES = {"choose": "Legacy system", "mapping": "Mapping", "dry_run": "Dry run", "phases": "Phase plan",
               "run": "Run a phase", "reconcile": "Reconcile", "cutover": "Cut over or roll back"}
ROLES = ("onboarding",)
# Quasar greys out steps that are not active below WCAG AA contrast; keep their titles readable.
STEPPER_CSS = """
.q-stepper__tab--disabled, .q-stepper__tab--disabled .q-stepper__title { color: #374151 !important; }
.q-stepper__title { color: #1f2937; }
.q-stepper__tab--disabled .q-stepper__dot { background: #4b5563 !important; }
"""


def _load(session: Session, plan_id: str) -> tuple[MigrationPlan, list[MigrationPhase]]:
    plan = mp.get_plan(session, plan_id)
    return plan, mp.phases(session, plan_id)


@ui.page("/migration")
async def migration_home() -> None:
    """Every migration, and a form to start a new one."""
    with frame("Migration"):
        if not allowed(ROLES):
            return
        plans = await in_session(mp.list_plans)
        if plans:
            ui.label("Migrations").classes("text-lg font-semibold").props("role=heading aria-level=2")
            for plan in plans:
                with ui.row().classes("items-center gap-4 border-b py-1 w-full").mark(f"plan-{plan.id}"):
                    ui.link(plan.name, f"/migration/{plan.id}").classes("font-medium text-blue-800")
                    ui.label(LEGACY_SYSTEMS[plan.legacy_system].name if plan.legacy_system in LEGACY_SYSTEMS
                             else plan.legacy_system)
                    ui.label(", ".join(plan.data_types))
                    ui.label(f"{plan.status.replace('_', ' ')} — at step: {STEP_TITLES.get(plan.wizard_step, '')}")
        with ui.card().classes("w-full max-w-2xl"):
            ui.label("Start a migration").classes("text-lg font-semibold").props("role=heading aria-level=2")
            name = ui.input("Name (for example the home's name)").classes("w-full").mark("plan-name")
            system = ui.select({s.id: s.name for s in LEGACY_SYSTEMS.values()}, label="Legacy system",
                               value="carecontrol").classes("w-full").mark("legacy-system")
            types_box = ui.column()
            chosen: dict[str, bool] = {}

            def show_types() -> None:
                types_box.clear()
                chosen.clear()
                with types_box:
                    ui.label("Data types to move").classes("text-sm")
                    for care_type in LEGACY_SYSTEMS[str(system.value)].care_types:
                        chosen[care_type] = True
                        ui.checkbox(care_type, value=True,
                                    on_change=lambda e, t=care_type: chosen.__setitem__(t, bool(e.value))).mark(
                            f"type-{care_type}")

            system.on_value_change(lambda _: show_types())
            show_types()

            async def start() -> None:
                plan = await attempt(mp.create_plan, name=str(name.value or ""), legacy_system_id=str(system.value),
                                     data_types=[t for t, on in chosen.items() if on], actor=actor())
                if plan is not None:
                    ui.navigate.to(f"/migration/{plan.id}")

            ui.button("Start", on_click=start).mark("plan-start")


@ui.page("/migration/{plan_id}")
async def migration_wizard(plan_id: str) -> None:
    """The wizard for one plan, opened at its saved step."""
    ui.add_css(STEPPER_CSS)
    with frame("Migration wizard"):
        if not allowed(ROLES):
            return

        @ui.refreshable
        async def wizard() -> None:
            try:
                plan, phases = await in_session(_load, plan_id)
            except mp.MigrationError as exc:
                ui.label(str(exc)).props("role=alert")
                ui.link("All migrations", "/migration")
                return
            ui.label(f"{plan.name}: moving {', '.join(plan.data_types)} off "
                     f"{LEGACY_SYSTEMS[plan.legacy_system].name}").classes("text-lg").mark("plan-title")

            async def go(step: str) -> None:
                if await attempt(mp.set_step, plan_id, step) is not None:
                    wizard.refresh()

            with ui.stepper(value=plan.wizard_step).props("vertical").classes("w-full").mark("wizard") as stepper:
                current = mp.WIZARD_STEPS.index(plan.wizard_step)
                for position, step in enumerate(mp.WIZARD_STEPS):
                    with ui.step(step, title=STEP_TITLES[step]).props("done" if position < current else ""):
                        await STEP_BUILDERS[step](plan, phases, go, wizard)
            stepper.on_value_change(lambda e: go(str(e.value)) if e.value != plan.wizard_step else None)

        await wizard()


async def _choose(plan: MigrationPlan, _: list[MigrationPhase], go: Any, __: Any) -> None:
    system = LEGACY_SYSTEMS[plan.legacy_system]
    ui.label(f"{system.name}: {system.description}")
    ui.label(f"Data types: {', '.join(plan.data_types)}. Started by {plan.created_by}.")
    with ui.stepper_navigation():
        ui.button("Next", on_click=lambda: go("mapping")).mark("next-choose")


async def _mapping(plan: MigrationPlan, _: list[MigrationPhase], go: Any, wizard: Any) -> None:
    ui.label("The template maps each column of the legacy export to a WriteCareNotes field. "
             "Dates in DD/MM/YYYY become ISO dates; NHS and NI numbers are checked.").classes("text-sm")
    ui.table(columns=[{"name": n, "label": lbl, "field": n, "align": "left"} for n, lbl in
                      [("care_type", "Data type"), ("column", "Export column"), ("field", "WriteCareNotes field"),
                       ("convert", "Conversion")]],
             rows=[{**row, "key": f"{n}"} for n, row in enumerate(mp.template_rows(plan))], row_key="key").classes("w-full").props(
        "flat dense bordered hide-pagination :rows-per-page-options=[0]").mark("mapping-table")

    async def accept() -> None:
        if await attempt(mp.accept_mapping, plan.id, actor()) is not None:
            wizard.refresh()

    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("choose")).props("flat")
        ui.button("Use this mapping", on_click=accept).mark("use-mapping")


def _summary_cards(summary: dict[str, Any]) -> None:
    with ui.row().classes("gap-3"):
        for label, key in [("Records", "total"), ("Valid", "valid"), ("With invalid fields", "invalid_records"),
                           ("Duplicate groups", "duplicates"), ("Matched", "matched"),
                           ("To confirm", "possible"), ("New", "new")]:
            with ui.card().classes("w-32 p-2").mark(f"dry-{key}"):
                ui.label(label).classes("text-xs text-slate-700")
                ui.label(str(summary.get(key, 0))).classes("text-xl font-bold")
        with ui.card().classes("w-32 p-2").mark("dry-accuracy"):
            ui.label("Accuracy").classes("text-xs text-slate-700")
            ui.label(pct_text(summary.get("accuracy_pct"))).classes("text-xl font-bold")


async def _dry_run(plan: MigrationPlan, _: list[MigrationPhase], go: Any, wizard: Any) -> None:
    report = plan.wizard_state.get("dry_run")

    async def run_it() -> None:
        if await attempt(mp.dry_run, plan.id, actor(), success="Dry run finished: nothing was written.") is not None:
            wizard.refresh()

    ui.button("Run the dry run again" if report else "Run the dry run", icon="science", on_click=run_it).mark(
        "run-dry-run")
    if report:
        ui.label(f"Dry run of {when_text(report.get('at'))}: nothing was written.").classes("text-sm")
        _summary_cards(report["summary"])
        decisions = plan.wizard_state.get("decisions", {})
        for t in report["types"]:
            with ui.expansion(f"{t['care_type']}: {t['total']} records, {len(t['invalid'])} invalid fields, "
                              f"{len(t['duplicates'])} duplicates, accuracy {pct_text(t['accuracy_pct'])}",
                              value=bool(t["possible"])).classes("w-full border rounded"):
                if t["invalid"]:
                    ui.table(columns=[{"name": n, "label": lbl, "field": n, "align": "left"} for n, lbl in
                                      [("id", "Record"), ("field", "Field"), ("problem", "Problem"), ("value", "Value")]],
                             rows=[{**i, "value": "" if i["value"] is None else str(i["value"]),
                                    "key": f"{i['id']}-{i['field']}"} for i in t["invalid"]],
                             row_key="key").classes("w-full").props(
                        "flat dense hide-pagination :rows-per-page-options=[0]").mark(f"invalid-{t['care_type']}")
                for group in t["duplicates"]:
                    ui.label(f"Probably the same record twice: {', '.join(group)} (only the first is migrated)")
                ui.label(f"Matched to existing records: {len(t['matched'])}; new: {len(t['new'])}").classes("text-sm")
                for p in t["possible"]:
                    decided = decisions.get(t["care_type"], {}).get(p["id"])
                    with ui.row().classes("items-center gap-3 border-l-4 border-amber-600 pl-2").mark(
                            f"possible-{p['id']}"):
                        ui.label(f"{p['id']} may be existing record {p['record_id']} (score {p['score']:.2f}: "
                                 f"{', '.join(p['reasons'])})")
                        if decided:
                            ui.label("confirmed: same person" if decided != "new" else "confirmed: a new record"
                                     ).classes("font-medium text-green-900").mark(f"decided-{p['id']}")
                        ui.button("Same person", on_click=lambda p=p, t=t: _decide(plan.id, t["care_type"], p["id"],
                                                                                     True, wizard)).props(
                            "dense outline no-caps").mark(f"same-{p['id']}")
                        ui.button("Different person", on_click=lambda p=p, t=t: _decide(
                            plan.id, t["care_type"], p["id"], False, wizard)).props("dense outline no-caps").mark(
                            f"different-{p['id']}")
    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("mapping")).props("flat")
        ui.button("Next: plan phases", on_click=lambda: go("phases")).mark("next-dry-run").set_enabled(bool(report))


async def _decide(plan_id: str, care_type: str, legacy_id: str, same: bool, wizard: Any) -> None:
    if await attempt(mp.decide_match, plan_id, care_type, legacy_id, same, actor()) is not None:
        wizard.refresh()


def when_text(value: Any) -> str:
    """An ISO timestamp from the saved state, shortened."""
    return str(value or "")[:19].replace("T", " ")


def _phase_card(phase: MigrationPhase) -> None:
    with ui.card().classes("w-full").mark(f"phase-{phase.phase_name}"):
        with ui.row().classes("items-center gap-3"):
            ui.label(phase.phase_name).classes("font-semibold")
            ui.label(phase.status.replace("_", " ")).classes("px-2 rounded bg-slate-200 text-sm")
            ui.label(", ".join(phase.data_types))
            ui.label(f"{phase.start_date or '—'} to {phase.end_date or '—'}").classes("text-sm")
        ui.label("Success when: " + "; ".join(describe(c) for c in phase.success_criteria)).classes("text-sm")
        ui.label("Roll back if: " + "; ".join(describe(c) for c in phase.rollback_triggers)).classes("text-sm")
        if phase.run_id:
            ui.link("Open the phase's run", f"/runs/{phase.run_id}").classes("text-sm text-blue-800")


async def _phases(plan: MigrationPlan, phases: list[MigrationPhase], go: Any, wizard: Any) -> None:
    for phase in phases:
        _phase_card(phase)
    taken = {t for p in phases if p.status != "rolled_back" for t in p.data_types}
    free = [t for t in plan.data_types if t not in taken]
    if free:
        with ui.card().classes("w-full"):
            ui.label("Add a phase").classes("font-semibold").props("role=heading aria-level=3")
            name = ui.input("Phase name", value=f"Phase {len(phases) + 1}: {free[0]}").classes("w-80").mark(
                "phase-name")
            picks = {t: ui.checkbox(t, value=(t == free[0])).mark(f"phase-type-{t}") for t in free}
            with ui.row():
                start = ui.input("Start date", value=date.today().isoformat()).props("type=date").mark("phase-start")
                end = ui.input("End date", value=date.today().isoformat()).props("type=date").mark("phase-end")
            with ui.row():
                min_accuracy = ui.number("Success: accuracy at least (%)", value=99.9, min=0, max=100).classes("w-64")
                max_error = ui.number("Roll back if failed records above (%)", value=5, min=0, max=100).classes(
                    "w-64")

            async def add() -> None:
                phase = await attempt(
                    mp.add_phase, plan.id, name=str(name.value or ""), data_types=[t for t, c in picks.items() if c.value],
                    start=start.value, end=end.value,
                    success_criteria=[{"metric": "accuracy_pct", "op": ">=", "value": float(min_accuracy.value or 0)},
                                      {"metric": "missing_records", "op": "<=", "value": 0},
                                      {"metric": "unconfirmed_matches", "op": "<=", "value": 0}],
                    rollback_triggers=[{"metric": "error_rate_pct", "op": ">", "value": float(max_error.value or 0)},
                                       {"metric": "accuracy_pct", "op": "<", "value": 99.0}],
                    actor=actor(), success="Phase added.")
                if phase is not None:
                    wizard.refresh()

            ui.button("Add phase", on_click=add).mark("add-phase")
    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("dry_run")).props("flat")
        ui.button("Next: run a phase", on_click=lambda: go("run")).mark("next-phases").set_enabled(bool(phases))


async def _run(plan: MigrationPlan, phases: list[MigrationPhase], go: Any, wizard: Any) -> None:
    ready = [p for p in phases if p.status in ("planned", "rolled_back")]
    waiting = mp.unconfirmed(plan)
    if waiting:
        ui.label(f"{len(waiting)} possible matches still need a person to confirm them (see the dry run)."
                 ).classes("text-amber-900")
    if not ready:
        ui.label("Every planned phase has run. Add another phase to continue.")
    for phase in ready:
        with ui.row().classes("items-center gap-3"):
            ui.label(f"{phase.phase_name} ({', '.join(phase.data_types)})")

            async def run_it(phase_id: str = phase.id) -> None:
                run = await attempt(mp.run_phase, phase_id, actor())
                if run is not None:
                    ui.notify(f"Phase ran: {run.counts.get('written', 0)} records written, "
                              f"{run.counts.get('failed', 0)} failed.", type="positive")
                    wizard.refresh()

            ui.button("Run this phase", icon="play_arrow", on_click=run_it).mark(f"run-phase-{phase.phase_name}")
    for phase in phases:
        if phase.status not in ("planned",) and phase.report.get("counts"):
            counts = phase.report["counts"]
            ui.label(f"{phase.phase_name}: read {counts.get('read', 0)}, written {counts.get('written', 0)}, "
                     f"failed {counts.get('failed', 0)}, skipped {counts.get('skipped', 0)}").classes("text-sm")
            for text in phase.report.get("triggers", []):
                ui.label(f"Rollback trigger fired: {text}").classes("text-red-800")
    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("phases")).props("flat")
        ui.button("Next: reconcile", on_click=lambda: go("reconcile")).mark("next-run")


def _current(plan: MigrationPlan, phases: list[MigrationPhase]) -> MigrationPhase | None:
    wanted = plan.wizard_state.get("phase_id")
    return next((p for p in phases if p.id == wanted), None) or next(
        (p for p in reversed(phases) if p.status != "planned"), None)


async def _reconcile(plan: MigrationPlan, phases: list[MigrationPhase], go: Any, wizard: Any) -> None:
    phase = _current(plan, phases)
    if phase is None:
        ui.label("Run a phase first.")
    else:
        ui.label(f"{phase.phase_name}: {phase.status.replace('_', ' ')}")

        async def reconcile() -> None:
            if await attempt(mp.reconcile, phase.id, actor()) is not None:
                wizard.refresh()

        if phase.status in ("ran", "reconciled"):
            ui.button("Reconcile", icon="fact_check", on_click=reconcile).mark("reconcile")
        result = phase.report.get("reconcile")
        if result:
            _reconcile_result(result)
    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("run")).props("flat")
        ui.button("Next: cut over or roll back", on_click=lambda: go("cutover")).mark("next-reconcile")


def _reconcile_result(result: dict[str, Any]) -> None:
    ui.label(f"Expected {result['expected']} records; missing {result['missing']}; "
             f"{result['mismatched_fields']} of {result['compared_fields']} fields differ; "
             f"accuracy {pct_text(result['accuracy_pct'])}").mark("reconcile-result")
    for verdict in result["success"]:
        ui.label(("✓ " if verdict["holds"] else "✗ ") + verdict["text"]).classes(
            "text-green-900" if verdict["holds"] else "text-red-800")
    for verdict in result["triggers"]:
        if verdict["holds"]:
            ui.label(f"Rollback trigger fired: {verdict['text']}").classes("text-red-800 font-medium")
    ui.label("All success criteria are met." if result["passed"] else "Some success criteria are not met."
             ).classes("font-medium").mark("criteria-passed" if result["passed"] else "criteria-failed")


async def _cutover(plan: MigrationPlan, phases: list[MigrationPhase], go: Any, wizard: Any) -> None:
    phase = _current(plan, phases)
    if phase is None:
        ui.label("Run and reconcile a phase first.")
    else:
        with ui.row().classes("items-center gap-2"):
            ui.label(phase.phase_name).classes("font-semibold")
            ui.label(phase.status.replace("_", " ")).classes("px-2 rounded border bg-slate-100 text-slate-900").mark(
                f"phase-status-{phase.status}")
        if phase.report.get("reconcile") and phase.status == "reconciled":
            _reconcile_result(phase.report["reconcile"])
        if phase.status == "reconciled":
            result = phase.report.get("reconcile", {})
            clean = bool(result.get("passed")) and not result.get("rollback_advised")
            override = None if clean else ui.input(
                "Why cut over although a criterion is not met or a rollback trigger fired?").classes("w-[36rem]").mark(
                "override-reason")

            async def cut() -> None:
                reason = str(override.value or "") if override is not None else ""
                if await attempt(mp.cut_over, phase.id, actor(), reason,
                                 success="Cut over: WriteCareNotes now owns these records.") is not None:
                    wizard.refresh()

            ui.button("Cut over to WriteCareNotes", icon="swap_horiz", on_click=cut).mark("cut-over")
        if phase.status in ("ran", "reconciled", "cut_over"):
            reason = ui.input("Reason for rolling back").classes("w-96").mark("rollback-reason")

            async def roll_back() -> None:
                report = await attempt(mp.roll_back_phase, phase.id, actor(), str(reason.value or ""))
                if report is not None:
                    ui.notify(f"Rolled back: {report.removed} records removed, {report.restored} restored; "
                              "ownership restored.", type="positive")
                    wizard.refresh()

            ui.button("Roll back this phase", icon="undo", on_click=roll_back).props("color=negative").mark(
                "roll-back-phase")
        if phase.report.get("rollback"):
            rb = phase.report["rollback"]
            ui.label(f"Rolled back by {rb['by']}: {rb['removed']} removed, {rb['restored']} restored. "
                     f"Reason: {rb['reason']}").mark("rollback-done")
    ui.link("Printable cutover report", f"/migration/{plan.id}/report").classes("text-blue-800").mark("report-link")
    with ui.stepper_navigation():
        ui.button("Back", on_click=lambda: go("reconcile")).props("flat")
        ui.button("Plan the next phase", on_click=lambda: go("phases")).props("outline")


STEP_BUILDERS: dict[str, Any] = {"choose": _choose, "mapping": _mapping, "dry_run": _dry_run, "phases": _phases,
                                 "run": _run, "reconcile": _reconcile, "cutover": _cutover}


@ui.page("/migration/{plan_id}/report")
async def cutover_report_page(plan_id: str) -> None:
    """A printable report of the migration: dry run, each phase, reconciliation and ownership."""
    ui.add_css("@media print { header, .no-print { display: none !important; } }")
    with frame("Cutover report"):
        if not allowed(ROLES):
            return
        try:
            report = await in_session(mp.cutover_report, plan_id)
        except mp.MigrationError as exc:
            ui.label(str(exc)).props("role=alert")
            return
        plan = report["plan"]
        ui.button("Print", icon="print", on_click=lambda: ui.run_javascript("window.print()")).classes("no-print")
        ui.label(f"{plan['name']} — from {plan['legacy_system']}").classes("text-xl").props("role=heading aria-level=2")
        ui.label(f"Data types: {', '.join(plan['data_types'])}. Status: {plan['status'].replace('_', ' ')}. "
                 f"Started by {plan['created_by']} on {plan['created_at'][:10]}. Report generated "
                 f"{report['generated_at'][:19].replace('T', ' ')} UTC.")
        if report["dry_run"]:
            ui.label("Dry run").classes("text-lg font-semibold").props("role=heading aria-level=2")
            _summary_cards(report["dry_run"])
        for phase in report["phases"]:
            ui.label(f"Phase: {phase['name']}").classes("text-lg font-semibold").props("role=heading aria-level=2")
            ui.label(f"{', '.join(phase['data_types'])}; {phase['start'] or '—'} to {phase['end'] or '—'}; "
                     f"status {phase['status'].replace('_', ' ')}")
            if phase["counts"]:
                ui.label("Records: " + ", ".join(f"{k} {v}" for k, v in sorted(phase["counts"].items())))
            if phase["reconcile"]:
                _reconcile_result(phase["reconcile"])
            if phase["cutover"]:
                ui.label(f"Cut over by {phase['cutover']['by']} at {phase['cutover']['at'][:19]}"
                         + (f" (override: {phase['cutover']['override_reason']})"
                            if phase["cutover"]["override_reason"] else ""))
            if phase["rollback"]:
                ui.label(f"Rolled back by {phase['rollback']['by']}: {phase['rollback']['reason']}")
        ui.label("Data ownership now").classes("text-lg font-semibold").props("role=heading aria-level=2")
        for row in report["ownership"]:
            ui.label(f"{row['care_type']}: owned by {row['primary_system']}, direction {row['sync_direction']}")
        if not report["ownership"]:
            ui.label("No ownership rules set by this migration.")
