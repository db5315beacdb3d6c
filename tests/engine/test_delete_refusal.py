"""Which records archived in WriteCareNotes are deleted at the vendor, and why the others are not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.sync.ownership import EXTERNAL, WCN, DeletePolicy, Direction, OwnershipRule
from engine.sync.ports import OutboundCandidate
from engine.sync.runner import StreamPlan, delete_refusal

WRITER = OwnershipRule(primary_system=WCN, direction=Direction.OUTBOUND, update_permissions=frozenset({WCN}))


def plan(rule: OwnershipRule = WRITER, send_deletes: bool = True) -> StreamPlan:
    return StreamPlan("contacts", "Contact", rule, mapper=None, send_deletes=send_deletes)  # type: ignore[arg-type]


CANDIDATE = OutboundCandidate(record_id="r1", version=3, values={"name": "A"}, content_hash="h", external_id="X-1",
                              synced_hash="h", last_writer_integration="", idempotency_key="k", deleted=True)


def test_a_linked_archived_record_is_deleted() -> None:
    assert delete_refusal(plan(), CANDIDATE, "integ") == ""


@pytest.mark.parametrize(("p", "c", "words"), [
    (plan(replace(WRITER, direction=Direction.INBOUND)), CANDIDATE, "nothing is written"),
    (plan(), replace(CANDIDATE, external_id=None), "nothing to delete"),
    (plan(), replace(CANDIDATE, external_id=None, vendor_deleted=True), "already deleted"),
    (plan(), replace(CANDIDATE, last_writer_integration="integ"), "echo"),
    (plan(replace(WRITER, delete_policy=DeletePolicy.IGNORE)), CANDIDATE, "delete policy"),
    (plan(replace(WRITER, update_permissions=frozenset({EXTERNAL}))), CANDIDATE, "may not change"),
    (plan(send_deletes=False), CANDIDATE, "cannot delete"),
])
def test_refusals_say_why(p: StreamPlan, c: OutboundCandidate, words: str) -> None:
    assert words in delete_refusal(p, c, "integ")
