"""Benchmark: the sync timeline with 10,000 runs in the database renders in under a second.

Two measurements, each against a baseline of 100 runs measured in the same run:

1. server: the timeline's queries and chart options (``load_view`` + ``chart_options``) for a week (each
   run drawn) and a quarter (runs aggregated per bucket in SQL), median of 7;
2. browser: Chromium opens ``/timeline?period=quarter`` and ``/timeline?period=week`` until the run
   count, the chart's canvas and the runs table are on screen, median of 9.

Budget: the 10,000-run page shows in under 1 s in the browser. Prints the figures and the ratios
(10,000 runs / 100 runs) last; exits 1 when over budget.

    .venv/bin/python bench/timeline.py [--n 10000] [--baseline 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "ops", ROOT / "tests" / "e2e"):
    sys.path.insert(0, str(extra))

import ops_seed  # noqa: E402
from ops_e2e_support import Server, carehub_server, chromium, signed_in  # noqa: E402

from storage import ops_queries as oq  # noqa: E402
from ui.pages.timeline import chart_options, load_view  # noqa: E402

BUDGET_SECONDS = 1.0


def server_side(server: Server, period: str, repeat: int = 7) -> float:
    """Median seconds for the queries and chart options of one timeline view."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with server.db.session() as session:
            flt = oq.TimelineFilter.period(period)
            view = load_view(session, flt, period, 1)
            chart_options(view, flt)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def browser_side(server: Server, period: str, repeat: int = 9) -> float:
    """Median seconds from navigation until count, chart canvas and table are on screen."""
    times = []
    with chromium() as browser:
        page = signed_in(browser, server, "admin@home.example")
        for _ in range(repeat + 1):  # the first visit warms caches and is dropped
            start = time.perf_counter()
            page.goto(f"{server.url}/timeline?period={period}")
            page.get_by_text("runs from").wait_for(timeout=30000)
            page.locator("[data-testid=timeline] canvas, .nicegui-echart canvas").first.wait_for(timeout=30000)
            page.locator("table tbody tr").first.wait_for(timeout=30000)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure(n: int, tmp: Path) -> dict[str, float]:
    """All four figures for a database holding ``n`` runs over the last 90 days."""
    with carehub_server(tmp, {"admin@home.example": "admin"}) as server:
        ids = ops_seed.integrations(server.db, ("Xero finance", "BambooHR staff", "Deputy rota", "NHS PDS"))
        ops_seed.bulk_runs(server.db, ids, n, days=90)
        return {"server week": server_side(server, "week"), "server quarter": server_side(server, "quarter"),
                "browser week": browser_side(server, "week"), "browser quarter": browser_side(server, "quarter")}


def main() -> int:
    """Run the benchmark; exit status 1 when over budget."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        base = measure(args.baseline, Path(a))
        big = measure(args.n, Path(b))
    print(f"{'measure':<18}{args.baseline:>10,} runs{args.n:>12,} runs{'ratio':>9}")
    for key in base:
        print(f"{key:<18}{base[key] * 1000:>11.0f} ms{big[key] * 1000:>13.0f} ms{big[key] / base[key]:>9.2f}")
    slowest = max(big["browser week"], big["browser quarter"])
    print(f"slowest browser view with {args.n:,} runs: {slowest:.3f} s (budget {BUDGET_SECONDS:.1f} s)")
    return 0 if slowest < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
