"""The sync timeline: every run on a time axis, filtered by integration, status and period.

A window with up to :data:`DETAIL_LIMIT` runs draws each run as a bar from start to end on its
integration's lane; bigger windows draw runs per time bucket and status, aggregated in SQL. A paged
table lists the same runs; each opens to its run page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nicegui import events, ui
from sqlmodel import Session

from storage import ops_queries as oq
from storage.models import RunStatus
from ui.components.ops_common import (
    allowed,
    escape,
    in_session,
    seconds_text,
    status_colour,
    status_label,
    when,
)
from ui.layout import frame

DETAIL_LIMIT = 600
PAGE_SIZE = 25
RENDER_BAR = """(params, api) => {
  const lane = api.value(0);
  const start = api.coord([api.value(1), lane]);
  const end = api.coord([api.value(2), lane]);
  const height = api.size([0, 1])[1] * 0.6;
  return {type: 'rect', shape: {x: start[0], y: start[1] - height / 2, width: Math.max(end[0] - start[0], 3),
          height: height}, style: api.style()};
}"""


@dataclass
class TimelineView:
    """What one visit's timeline shows: the query results for the current filters."""

    names: dict[str, str]
    total: int
    bars: list[oq.RunBar] = field(default_factory=list)
    buckets: list[oq.Bucket] = field(default_factory=list)
    bucket_seconds: int = 3600
    rows: list[oq.RunRow] = field(default_factory=list)


def load_view(session: Session, flt: oq.TimelineFilter, period: str, page: int) -> TimelineView:
    """Everything the page needs for ``flt``: individual runs or buckets, and one page of the table."""
    view = TimelineView(names=oq.integration_names(session), total=oq.count_runs(session, flt))
    if view.total <= DETAIL_LIMIT:
        view.bars = oq.timeline_bars(session, flt, DETAIL_LIMIT)
    else:
        view.bucket_seconds = oq.BUCKETS.get(period, 86400)
        view.buckets = oq.timeline_buckets(session, flt, view.bucket_seconds)
    view.rows, _ = oq.runs_page(session, flt, page, PAGE_SIZE, total=view.total, names=view.names)
    return view


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def chart_options(view: TimelineView, flt: oq.TimelineFilter) -> dict[str, Any]:
    """ECharts options: per-run bars on integration lanes, or stacked buckets per status."""
    base: dict[str, Any] = {
        "animation": False, "aria": {"enabled": True},
        "grid": {"left": 150, "right": 24, "top": 30, "bottom": 70},
        "xAxis": {"type": "time", "min": _ms(flt.start), "max": _ms(flt.end)},
        "dataZoom": [{"type": "inside", "filterMode": "weakFilter"},
                     {"type": "slider", "filterMode": "weakFilter", "height": 20, "bottom": 20}],
        "tooltip": {"trigger": "item", ":formatter": "(p) => (p.data && p.data.tip) || p.seriesName"},
    }
    if view.bars or not view.buckets:
        lanes = sorted({b.integration_id for b in view.bars}, key=lambda i: view.names.get(i, i))
        lane_of = {iid: n for n, iid in enumerate(lanes)}
        data = [{"value": [lane_of[b.integration_id], _ms(b.start), _ms(b.end), b.duration_seconds, b.read,
                           b.written, b.failed],
                 "itemStyle": {"color": status_colour(b.status)},
                 "tip": (f"{escape(view.names.get(b.integration_id, b.integration_id))}<br/>"
                         f"{escape(status_label(b.status))} · {escape(b.trigger)}<br/>{escape(when(b.start))}"
                         f" · {escape(seconds_text(b.duration_seconds))}<br/>read {b.read}, written {b.written},"
                         f" failed {b.failed}")} for b in view.bars]
        return {**base, "yAxis": {"type": "category", "data": [view.names.get(i, i) for i in lanes]},
                "series": [{"type": "custom", "name": "runs", "clip": True, "encode": {"x": [1, 2], "y": 0},
                            ":renderItem": RENDER_BAR, "data": data}]}
    series = []
    for status in RunStatus:
        points = [{"value": [_ms(b.start), b.runs], "tip": (
            f"{escape(when(b.start))}<br/>{b.runs} {escape(status_label(status.value).lower())} runs<br/>"
            f"average {escape(seconds_text(b.avg_seconds))}, {b.records} records read")}
                  for b in view.buckets if b.status == status.value]
        if points:
            series.append({"type": "bar", "name": status_label(status.value), "stack": "runs",
                           "itemStyle": {"color": status_colour(status.value)}, "data": points,
                           "barMaxWidth": 24})
    return {**base, "yAxis": {"type": "value", "name": "runs"}, "legend": {"top": 0}, "series": series}


PERIOD_LABELS = {"day": "Last day", "week": "Last week", "month": "Last month", "quarter": "Last quarter"}


@ui.page("/timeline")
async def timeline_page(period: str = "week", status: str = "", integration: str = "") -> None:
    """Every sync run on a time axis; click a run (or a bucket, to zoom in) for more."""
    with frame("Sync timeline"):
        if not allowed(("admin",)):
            return
        names = await in_session(oq.integration_names)
        state: dict[str, Any] = {
            "period": period if period in oq.PERIODS else "week",
            "statuses": [s for s in status.split(",") if s in {r.value for r in RunStatus}],
            "integrations": [i for i in integration.split(",") if i in names],
            "window": None, "page": 1,
        }

        def current_filter() -> oq.TimelineFilter:
            if state["window"] is not None:
                start, end = state["window"]
                return oq.TimelineFilter(start, end, tuple(state["integrations"]), tuple(state["statuses"]))
            return oq.TimelineFilter.period(state["period"], integration_ids=state["integrations"],
                                            statuses=state["statuses"])

        with ui.row().classes("items-end gap-4 w-full").props('role=search aria-label="Filter runs"'):
            period_select = ui.select(PERIOD_LABELS, value=state["period"], label="Period").classes("w-40").mark(
                "period")
            integration_select = ui.select({i: n for i, n in sorted(names.items(), key=lambda kv: kv[1])},
                                           value=state["integrations"], multiple=True,
                                           label="Integrations").classes("min-w-[16rem]").props(
                "use-chips clearable").mark("integrations")
            status_select = ui.select({s.value: status_label(s.value) for s in RunStatus}, value=state["statuses"],
                                      multiple=True, label="Status").classes("min-w-[14rem]").props(
                "use-chips clearable").mark("statuses")
            ui.button("Refresh", icon="refresh", on_click=lambda: body.refresh()).props("outline no-caps")

        async def on_filter(_: Any = None) -> None:
            state.update(period=period_select.value, integrations=list(integration_select.value or []),
                         statuses=list(status_select.value or []), window=None, page=1)
            body.refresh()

        for control in (period_select, integration_select, status_select):
            control.on_value_change(on_filter)

        @ui.refreshable
        async def body() -> None:
            flt = current_filter()
            view = await in_session(load_view, flt, state["period"], state["page"])
            with ui.row().classes("items-center gap-4"):
                ui.label(f"{view.total:,} run{'' if view.total == 1 else 's'} from {when(flt.start)} to {when(flt.end)} (UTC)"
                         ).mark("run-total")
                if state["window"] is not None:
                    def back() -> None:
                        state["window"] = None
                        body.refresh()
                    ui.button("Back to the whole period", icon="zoom_out", on_click=back).props("flat no-caps")
            mode = "each run" if view.bars else "runs per time bucket"
            ui.label(f"Chart shows {mode}. Colours: green succeeded, red failed, purple rolled back. "
                     "Click a run to open it, or a bar of runs to zoom in.").classes("text-sm text-slate-700")

            def on_point(e: events.EChartPointClickEventArguments) -> None:
                if view.bars:
                    if 0 <= e.data_index < len(view.bars):
                        ui.navigate.to(f"/runs/{view.bars[e.data_index].id}")
                    return
                value = e.data.get("value") if isinstance(e.data, dict) else None
                if value:
                    start = datetime.fromtimestamp(value[0] / 1000, flt.start.tzinfo)
                    state["window"] = (start, start + timedelta(seconds=view.bucket_seconds))
                    state["page"] = 1
                    body.refresh()

            ui.echart(chart_options(view, flt), on_point_click=on_point).classes("w-full h-96").props(
                'role=img aria-label="Timeline chart of sync runs"').mark("timeline-chart")
            _runs_table(view, state, body)

        await body()


def _runs_table(view: TimelineView, state: dict[str, Any], body: Any) -> None:
    columns = [
        {"name": "when", "label": "Queued (UTC)", "field": "when", "align": "left"},
        {"name": "integration", "label": "Integration", "field": "integration", "align": "left"},
        {"name": "status", "label": "Status", "field": "status", "align": "left"},
        {"name": "trigger", "label": "Trigger", "field": "trigger", "align": "left"},
        {"name": "duration", "label": "Duration", "field": "duration", "align": "right"},
        {"name": "read", "label": "Read", "field": "read", "align": "right"},
        {"name": "written", "label": "Written", "field": "written", "align": "right"},
        {"name": "failed", "label": "Failed", "field": "failed", "align": "right"},
        {"name": "open", "label": "Run", "field": "id", "align": "left"},
    ]
    rows = [{"id": r.id, "when": when(r.queued_at), "integration": r.integration, "status": status_label(r.status),
             "trigger": r.trigger, "duration": seconds_text(r.duration_seconds), "read": r.read,
             "written": r.written, "failed": r.failed} for r in view.rows]
    table = ui.table(columns=columns, rows=rows, row_key="id").classes("w-full").props(
        "flat bordered hide-pagination :rows-per-page-options=[0]").mark("runs-table")
    table.add_slot("body-cell-open", """
        <q-td :props="props"><a class="text-blue-800 underline" :href="'/runs/' + props.row.id"
           :aria-label="'Open run of ' + props.row.integration + ' queued ' + props.row.when">Open</a></q-td>""")
    pages = max(1, -(-view.total // PAGE_SIZE))
    if pages > 1:
        def go(e: Any) -> None:
            state["page"] = int(e.value)
            body.refresh()
        ui.pagination(1, pages, direction_links=True, value=state["page"], on_change=go).props(
            "max-pages=7 boundary-numbers").mark("runs-pager")
