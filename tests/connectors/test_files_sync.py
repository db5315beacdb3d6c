"""End to end through the real sync worker (arq on the test Redis, the test database): Sage 50 customer files
dropped in a folder become Contact care records; a malformed file imports nothing and fails the run with its
rows, columns and reasons; the next run goes on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from arq.connections import ArqRedis
from sqlalchemy import func as sqlfunc
from sqlalchemy import select

from app.sync_jobs import enqueue_run
from storage import runs as runrepo
from storage.models import CareRecord

from .conftest import TEMPLATES
from .worker_harness import drain, folder_integration

SAMPLES = Path(__file__).parent / "samples"


async def _drain(ctx_app: Any, redis_url: str) -> None:
    await drain(ctx_app, redis_url, "files-test-worker")


def _integration(ctx: Any, inbox: Path, outbox: Path) -> str:
    design = yaml.safe_load((TEMPLATES.parent / "mappings" / "sage50_files" / "Contact.yaml").read_text())
    return folder_integration(ctx, "sage50_files", "Sage 50 (files)", {"inbox_dir": inbox, "outbox_dir": outbox},
                              {"customers": ("Contact", design)})


def _contacts(ctx: Any) -> int:
    with ctx.db.session() as s:
        return int(s.execute(select(sqlfunc.count()).select_from(CareRecord)
                             .where(CareRecord.care_type == "Contact")).scalar_one())


async def test_sage50_files_through_the_worker(ctx: Any, arq: ArqRedis, redis_url: str, tmp_path: Path) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(SAMPLES / "sage50_customers.csv", inbox / "customers_2025-03.csv")
    integ = _integration(ctx, inbox, outbox)

    run1 = await enqueue_run(ctx.db, arq, integ, "manual", requested_by="test")
    await _drain(ctx, redis_url)
    r1 = runrepo.get_run(ctx.db, run1)
    assert r1.status == "succeeded", r1.error
    assert r1.counts["read"] == 4 and r1.counts["created"] == 4
    assert _contacts(ctx) == 4

    shutil.copy(SAMPLES / "sage50_customers_malformed.csv", inbox / "customers_2025-04.csv")
    os.utime(inbox / "customers_2025-04.csv", (2_000_000_000, 2_000_000_000))
    run2 = await enqueue_run(ctx.db, arq, integ, "manual")
    await _drain(ctx, redis_url)
    r2 = runrepo.get_run(ctx.db, run2)
    assert r2.status == "failed"
    assert "customers_2025-04.csv was not imported" in (r2.error or "")
    assert "row 3, column 'Post Code': not a UK postcode" in (r2.error or "")
    assert _contacts(ctx) == 4  # nothing from the bad file

    run3 = await enqueue_run(ctx.db, arq, integ, "manual")
    await _drain(ctx, redis_url)
    r3 = runrepo.get_run(ctx.db, run3)
    assert r3.status == "succeeded" and r3.counts["read"] == 0  # the bad file was set aside; nothing new
