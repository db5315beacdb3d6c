"""Benchmark: inbound sync throughput and memory, against dlt's rest_api source on the same sandbox.

100,000 Xero contacts from the sandbox (served by uvicorn in its own process, no rate limit, 1,000 per page)
go through a 20-field mapping into the care store (SQLite, WAL) by the real job function ``run_sync`` (large
pages are stored by the worker's store writer process, as in production; its memory is counted too).
In the same run dlt's ``rest_api`` source loads the same sandbox into SQLite through its sqlalchemy
destination. Each measurement runs in a fresh subprocess, so peak RSS is its own.

Budget: our records/s >= 2 x dlt's; our peak RSS at 100k <= 1.5 x our peak RSS at 10k.
Prints the figures, the ratios last, and exits 1 when over budget.

    .venv/bin/python bench/sync.py [--n 100000] [--small 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REDIS_DB = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(n: int) -> tuple[subprocess.Popen[bytes], str]:
    """The Xero sandbox with ``n`` contacts in its own uvicorn process."""
    port = _free_port()
    code = ("import uvicorn\n"
            "from connectors.sandboxes.common import SandboxConfig\n"
            "from connectors.sandboxes.xero import create_app\n"
            f"app = create_app(SandboxConfig(records={{'contacts': {n}, 'invoices': 0}}))\n"
            f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning', access_log=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/_sandbox/faults", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, url


def bench_manifest(directory: Path) -> None:
    """The Xero manifest without rate limits and with 1,000 records per page, as ``xero_bench``."""
    import yaml

    data = yaml.safe_load((ROOT / "templates/connectors/xero.yaml").read_text())
    data["id"] = "xero_bench"
    data["rate_limits"] = {}
    data["streams"] = {"contacts": data["streams"]["contacts"]}
    data["streams"]["contacts"]["paginator"]["page_size"] = 1000
    data["test_stream"] = "contacts"
    (directory / "xero_bench.yaml").write_text(yaml.safe_dump(data))


def peak_rss_mb() -> float:
    """Peak resident set size in MiB (Linux reports KiB): this process plus its largest finished child
    (our store writer process, stopped before this is read), so no memory hides in a helper process."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process and of its finished children (the store writer), user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round(own.ru_utime + own.ru_stime, 2), "child_cpu_s": round(kids.ru_utime + kids.ru_stime, 2)}


def tenant_id(url: str, token: str) -> str:
    """The sandbox organisation's tenant id, from Xero's ``/connections``."""
    import httpx

    return str(httpx.get(url + "/connections", headers={"Authorization": f"Bearer {token}"}).json()[0]["tenantId"])


# ------------------------------------------------------------------------------------------- phases


def phase_ours(url: str, n: int, work: Path) -> dict[str, Any]:
    """Our path: enqueue_run + run_sync (the arq job function) into a fresh SQLite care store."""
    import asyncio

    os.environ.update(CAREHUB_ENV="local", CAREHUB_DATA_DIR=str(work / "data"),
                      CAREHUB_DATABASE_URL=f"sqlite:///{work / 'ours.db'}",
                      CAREHUB_REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
                      CAREHUB_CONNECTOR_DIRS=str(work), CAREHUB_SECRET_KEYS="")
    import httpx
    import yaml
    from arq.connections import RedisSettings, create_pool

    from app.context import get_context
    from app.sync_jobs import enqueue_run, run_sync
    from storage.migrate import upgrade
    from storage.models import Integration, MappingDesign, SyncConfiguration
    from storage.runs import get_run

    upgrade(os.environ["CAREHUB_DATABASE_URL"])
    app = get_context()
    tokens = httpx.post(url + "/_sandbox/tokens").json()
    tenant = tenant_id(url, tokens["access_token"])
    with app.db.session() as s:
        integ = Integration(name="bench", connector_id="xero_bench", status="active", operation_mode="external_primary",
                            connection_details={"tenant_id": tenant, "base_url": url},
                            credentials_encrypted=app.box.encrypt({
                                "client_id": "c", "client_secret": "s", "access_token": tokens["access_token"],
                                "refresh_token": tokens["refresh_token"], "expires_at": time.time() + 1700}))
        s.add(integ)
        s.flush()
        s.add(SyncConfiguration(integration_id=integ.id, sync_direction="inbound", batch_size=1000,
                                streams=[{"stream": "contacts", "care_type": "Contact"}],
                                retry_policy={"call_deadline_seconds": 120}))
        s.add(MappingDesign(integration_id=integ.id, stream="contacts", care_type="Contact",
                            design=yaml.safe_load((ROOT / "bench/contact20.yaml").read_text())))
        integ_id = integ.id

    from app.store_writer import start_writer, writer_for
    from app.worker import freeze_heap

    start_writer(app.db.url)  # as the worker's startup does
    freeze_heap()

    async def go() -> tuple[float, dict[str, Any]]:
        pool = await create_pool(RedisSettings.from_dsn(os.environ["CAREHUB_REDIS_URL"]))
        run_id = await enqueue_run(app.db, pool, integ_id, "manual")
        writer = writer_for(app.db.url)
        while writer is not None and not await writer.ready():  # a running worker's writer is up already
            await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        result = await run_sync({"app": app, "redis": pool, "worker_id": "bench"}, run_id)
        took = time.perf_counter() - t0
        await pool.delete(f"arq:job:sync:{run_id}:0")
        await pool.zrem("arq:queue", f"sync:{run_id}:0")
        await pool.aclose()
        run = get_run(app.db, run_id)
        assert run is not None and result == "succeeded", (result, run and run.error)
        return took, dict(run.counts)

    took, counts = asyncio.run(go())
    assert counts["created"] == n, counts
    from app.store_writer import close_writers

    close_writers()  # waits for the writer process, so its peak memory is counted below
    return {"records": n, "seconds": round(took, 3), "rps": round(n / took, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            **cpu_seconds()}


def phase_dlt(url: str, n: int, work: Path) -> dict[str, Any]:
    """dlt's rest_api source on the same sandbox into SQLite (sqlalchemy destination)."""
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    import dlt
    import httpx
    from dlt.sources.rest_api import rest_api_source


    token = httpx.post(url + "/_sandbox/tokens").json()["access_token"]
    tenant = tenant_id(url, token)
    source = rest_api_source({
        "client": {"base_url": url + "/api.xro/2.0/", "auth": {"type": "bearer", "token": token},
                   "headers": {"xero-tenant-id": tenant}},
        "resources": [{"name": "contacts", "endpoint": {
            "path": "Contacts", "params": {"pageSize": 1000, "order": "UpdatedDateUTC ASC"}, "data_selector": "Contacts",
            "paginator": {"type": "page_number", "page_param": "page", "base_page": 1,
                          "total_path": "pagination.pageCount"}}}],
    })
    pipeline = dlt.pipeline(pipeline_name="bench_dlt", pipelines_dir=str(work / "dlt"),
                            destination=dlt.destinations.sqlalchemy(f"sqlite:///{work / 'dlt.db'}"),
                            dataset_name="main", progress="log" if os.environ.get("BENCH_VERBOSE") else None)
    t0 = time.perf_counter()
    pipeline.run(source)
    took = time.perf_counter() - t0
    import sqlite3

    con = sqlite3.connect(work / "dlt.db")
    tables = [r[0] for r in con.execute("select name from sqlite_master where type='table' and name like '%contacts'")]
    loaded = con.execute(f'select count(*) from "{tables[0]}"').fetchone()[0] if tables else -1
    con.close()
    assert loaded == n, (tables, loaded)
    return {"records": n, "seconds": round(took, 3), "rps": round(n / took, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_phase(name: str, url: str, n: int) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; returns its JSON line."""
    work = Path(tempfile.mkdtemp(prefix=f"carehub-bench-{name}-"))
    try:
        bench_manifest(work)
        out = subprocess.run([sys.executable, __file__, "--phase", name, "--url", url, "--n", str(n),
                              "--work", str(work)], cwd=ROOT, capture_output=True, text=True, check=False)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode != 0 or not lines:
            sys.stderr.write(out.stdout[-3000:] + out.stderr[-5000:])
            raise SystemExit(f"phase {name} ({n}) failed")
        return dict(json.loads(lines[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--phase")
    ap.add_argument("--url")
    ap.add_argument("--work")
    args = ap.parse_args()
    if args.phase:
        fn = phase_ours if args.phase == "ours" else phase_dlt
        print(json.dumps(fn(args.url, args.n, Path(args.work))))
        return 0
    big, big_url = start_sandbox(args.n)
    small, small_url = start_sandbox(args.small)
    try:
        ours_small = run_phase("ours", small_url, args.small)
        print(f"ours  {args.small:>7} records: {ours_small['rps']:>9.1f} rec/s  {ours_small['seconds']:>7.2f} s  "
              f"peak {ours_small['peak_rss_mb']:.1f} MiB")
        ours = run_phase("ours", big_url, args.n)
        print(f"ours  {args.n:>7} records: {ours['rps']:>9.1f} rec/s  {ours['seconds']:>7.2f} s  "
              f"peak {ours['peak_rss_mb']:.1f} MiB  cpu {ours['cpu_s']:.1f} s + writer {ours['child_cpu_s']:.1f} s")
        dlt = run_phase("dlt", big_url, args.n)
        print(f"dlt   {args.n:>7} records: {dlt['rps']:>9.1f} rec/s  {dlt['seconds']:>7.2f} s  "
              f"peak {dlt['peak_rss_mb']:.1f} MiB")
    finally:
        for p in (big, small):
            p.terminate()
            p.wait(10)
    speed = ours["rps"] / dlt["rps"]
    memory = ours["peak_rss_mb"] / ours_small["peak_rss_mb"]
    ok = speed >= 2.0 and memory <= 1.5
    print(f"memory ratio (ours 100k / ours 10k peak RSS): {memory:.2f}  (budget <= 1.50)")
    print(f"speed ratio (ours / dlt records per second): {speed:.2f}  (budget >= 2.00)  {'OK' if ok else 'OVER BUDGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
