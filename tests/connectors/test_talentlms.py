"""TalentLMS connector against its sandbox: API key as basic-auth user, plain-array lists, the learner/course
progress walk (parent/child pages resumable from a checkpoint), the error envelope, storms and mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed, VendorError
from connectors.sandboxes.talentlms import API_KEY, COURSES, DOMAIN, enrolments

from .workforce_helpers import (
    check_registered,
    manifest,
    map_records,
    read_all,
    sandbox,
    session,
    storm_starter,
)

USERS = 30
RECORDS = {"users": USERS}
ENROLMENTS = sum(len(enrolments(42, u)) for u in range(USERS))


def talentlms(app: Any, key: str = API_KEY) -> Any:
    return session("talentlms", app, {"domain": DOMAIN}, {"api_key": key})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("talentlms")
    assert manifest("talentlms").rate_limits.per_second == 40  # 200 calls per 5 seconds


async def test_users_and_courses_full_read() -> None:
    app = sandbox("talentlms", records=RECORDS)
    async with talentlms(app) as s:
        users, _ = await read_all(s, "users")
        courses, _ = await read_all(s, "courses")
    assert len(users) == USERS == len({u.external_id for u in users})
    assert [c.data["name"] for c in courses] == [name for _, name, _ in COURSES]


async def test_course_progress_walks_every_learner_and_resumes() -> None:
    app = sandbox("talentlms", records=RECORDS)
    async with talentlms(app) as s:
        records, pages = await read_all(s, "course_progress")
    assert len(pages) == USERS + 1 and not pages[0].records  # the learner list, then one page per learner
    keys = [r.external_id for r in records]
    assert len(keys) == len(set(keys)) == ENROLMENTS
    assert all(r.external_id == f"{r.data['user_id']}:{r.data['id']}" and "@" in r.data["user_email"] for r in records)
    assert pages[-1].checkpoint == {}
    # Resume from the checkpoint after the 10th learner: the rest, once each.
    async with talentlms(app) as s:
        rest, _ = await read_all(s, "course_progress", pages[10].checkpoint)
    assert [r.external_id for r in rest] == keys[len(keys) - len(rest):]
    assert len(rest) == sum(len(enrolments(42, u)) for u in range(10, USERS))


async def test_bad_key_and_missing_user_use_talentlms_envelope() -> None:
    app = sandbox("talentlms", records=RECORDS)
    async with talentlms(app, key="nope") as s:
        with pytest.raises(AuthFailed, match="Invalid API key provided"):
            await read_all(s, "users")
    async with talentlms(app) as s:
        spec = s.stream("course_progress")
        s.manifest.streams["missing"] = spec.model_copy(update={"path": "/api/v1/users/id:999999", "records": "courses",
                                                                "paginator": manifest("talentlms").streams["users"]
                                                                .paginator})
        with pytest.raises(VendorError, match="The requested user does not exist") as err:
            await read_all(s, "missing")
    assert err.value.status == 404


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("talentlms", records=RECORDS)
    async with talentlms(app) as s:
        records, _ = await read_all(s, "course_progress", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == ENROLMENTS
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("talentlms", records=RECORDS)
    async with talentlms(app) as s:
        progress, _ = await read_all(s, "course_progress")
        users = await s.sample("users", USERS)
    training = map_records("talentlms", "TrainingRecord", progress)
    assert {t["status"] for t in training} == {"completed", "assigned", "in-progress"}
    assert all(t.get("completedAt") for t in training if t["status"] == "completed")
    assert all("completedAt" not in t or t["completedAt"] is None for t in training if t["status"] != "completed")
    assert any(t.get("expiresAt") for t in training) and all("@" in t["employeeRef"] for t in training)
    staff = map_records("talentlms", "Employee", users)
    assert staff[3]["externalRefs"]["talentlms"] == users[3].external_id and staff[3]["email"] == users[3].data["email"]
