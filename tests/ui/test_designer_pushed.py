"""The designer on a webhook-fed stream (LinkedIn Apply Connect applications): it opens like any other
stream, says when nothing has arrived yet, and shows pushed applications from the webhook inbox as samples."""

from __future__ import annotations

from typing import Any

from nicegui.testing import User
from ui_helpers import sign_in

from connectors.sandboxes.linkedin_talent import CLIENT_ID, CLIENT_SECRET, ORGANIZATION
from storage import integrations as svc
from storage import webhooks as store
from ui.services import services

APPLICATION = {"jobApplicationId": "urn:li:jobApplication:6100042", "jobPosting": "urn:li:jobPosting:3900000002",
               "externalJobPostingId": "WCN-JOB-00002", "integrationContext": ORGANIZATION,
               "appliedAt": 1764316800000,
               "applicant": {"firstName": "Aisha", "lastName": "Khan", "email": "aisha.khan@example.co.uk",
                             "phoneNumber": "+44 7700 900123", "location": "Leeds, United Kingdom"}}


async def test_designer_samples_a_webhook_fed_stream_from_the_inbox(user: User, db: Any) -> None:
    await sign_in(user, db)
    with db.session() as s:
        integration = svc.configure_integration(
            s, box=services().box, actor="test", name="LinkedIn (Apply Connect)", connector_id="linkedin_talent",
            status="active", credentials={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            connection_details={"base_url": "http://127.0.0.1:9", "organization_urn": ORGANIZATION},
            sync_settings={"streams": [{"stream": "applications", "care_type": "Applicant"}]})
        iid = integration.id
    await user.open(f"/integrations/{iid}/design/applications")
    await user.should_see(marker="sample-problem", retries=100)
    await user.should_see("none has arrived yet")
    await user.should_see(marker="src:jobApplicationId")
    await user.should_see(marker="tgt:givenName")

    with db.session() as s:
        assert store.claim_inbound(s, delivery_id="li:1", integration_id=iid, payload=APPLICATION)
        assert store.claim_inbound(s, delivery_id="li:2", integration_id=iid, payload={"unrelated": True})
    await user.open(f"/integrations/{iid}/design/applications")
    await user.should_see("urn:li:jobApplication:6100042", retries=100)
    await user.should_not_see(marker="sample-problem")
