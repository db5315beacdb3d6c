"""Every recruitment, training and performance connector connects with its sandbox's own settings and
credentials (practice mode), and reads every stream through the sandbox mounted like the web app mounts it
(``/sandbox/<id>``), so absolute next links, token URLs and parent/child paths keep the mount prefix."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from connectors.manifest import RateLimits
from connectors.runtime import ConnectorSession
from connectors.sandboxes import SandboxConfig, mount_sandboxes
from connectors.sandboxes.talent import TALENT_SANDBOXES

from .workforce_helpers import fast_rules, manifest, read_all

CONNECTORS = sorted(TALENT_SANDBOXES)
WRITE_ONLY = {("linkedin_talent", "job_postings")}  # LinkedIn has no read of postings


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_practice_mode_connects_and_reads_every_stream_when_mounted(connector: str) -> None:
    host = FastAPI()
    app = mount_sandboxes(host, config=SandboxConfig(records=12), only=[connector])[connector]
    m = manifest(connector)
    async with ConnectorSession(m, app.state.config, app.state.credentials,
                                base_url=f"http://carehub.local/sandbox/{connector}",
                                transport=httpx.ASGITransport(app=host), connection_id=f"{connector}-practice",
                                error_rules=fast_rules(m), rate_limits=RateLimits()) as s:
        check = await s.test_connection()
        assert check.ok, check.reason
        for stream in m.streams:
            if (connector, stream) in WRITE_ONLY or m.streams[stream].source == "webhook":
                continue  # nothing to read: written only, or pushed by the vendor's webhooks
            records, _ = await read_all(s, stream)
            assert records or stream == "job_posting_tasks", f"{connector}.{stream} read nothing"
            assert len({r.external_id for r in records}) == len(records), f"{connector}.{stream} repeats records"
