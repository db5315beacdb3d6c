"""Moodle connector against its sandbox: wstoken in the query, wsfunction calls with moodlewsrestformat=json,
exceptions inside HTTP 200 replies treated as the errors they are, completion per enrolled user and course
(parent/child over the configured courses, resumable), storms and mappings."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import AuthFailed, VendorError
from connectors.sandboxes.moodle import COURSES, FIRST_USER, SITE, TOKEN, enrolled

from .workforce_helpers import check_registered, map_records, read_all, sandbox, session, storm_starter

USERS = 25
RECORDS = {"users": USERS}
FOLLOWED = "2,3,6"
EXPECTED = sum(len(enrolled(42, c, USERS)) for c in (2, 3, 6))


def moodle(app: Any, token: str = TOKEN, courses: str = FOLLOWED) -> Any:
    return session("moodle", app, {"site": SITE, "course_ids": courses}, {"token": token})


def test_manifest_sandbox_and_catalog() -> None:
    check_registered("moodle")


async def test_users_courses_and_site_info() -> None:
    app = sandbox("moodle", records=RECORDS)
    async with moodle(app) as s:
        users, _ = await read_all(s, "users")
        courses, _ = await read_all(s, "courses")
        check = await s.test_connection()
    assert len(users) == USERS and users[0].external_id == str(FIRST_USER)
    assert [c.data["fullname"] for c in courses] == [c[2] for c in COURSES]  # the front page is left out
    assert check.ok


async def test_completions_for_followed_courses_across_pages_and_resume() -> None:
    app = sandbox("moodle", records=RECORDS)
    async with moodle(app) as s:
        records, pages = await read_all(s, "course_completions")
    assert len(pages) == 3 + EXPECTED and not any(p.records for p in pages[:3])  # 3 enrolment lists, then children
    keys = [r.external_id for r in records]
    assert len(keys) == len(set(keys)) == EXPECTED
    assert {r.data["courseid"] for r in records} == {2, 3, 6}
    assert all(r.data["course"] == next(c[2] for c in COURSES if c[0] == r.data["courseid"]) for r in records)
    assert pages[-1].checkpoint == {}
    async with moodle(app) as s:
        rest, _ = await read_all(s, "course_completions", pages[3 + 10].checkpoint)
    assert [r.external_id for r in rest] == keys[11:]


async def test_exceptions_in_http_200_are_errors() -> None:
    app = sandbox("moodle", records=RECORDS)
    async with moodle(app, token="wrong") as s:
        with pytest.raises(AuthFailed, match="Invalid token - token not found"):
            await read_all(s, "users")
        result = await s.test_connection()
    assert not result.ok and "did not accept" in result.reason
    async with moodle(app, courses="8") as s:  # the induction course tracks no completion
        with pytest.raises(VendorError, match="No completion criteria set for this course") as no_criteria:
            await read_all(s, "course_completions")
    async with moodle(app, courses="99") as s:
        with pytest.raises(VendorError, match="Can't find data record") as missing:
            await read_all(s, "course_completions")
    assert no_criteria.value.status == 422 and missing.value.status == 404
    assert s.stats.retries == 0  # errors in the body are not retried blindly


@pytest.mark.parametrize("storm", ["storm_429", "storm_5xx"])
async def test_storm_ends_with_every_record(storm: str) -> None:
    app = sandbox("moodle", records=RECORDS)
    async with moodle(app) as s:
        records, _ = await read_all(s, "course_completions", between=storm_starter(app, storm))
    assert len(records) == len({r.external_id for r in records}) == EXPECTED
    assert s.stats.failed_calls == 0
    assert (s.stats.throttled if storm == "storm_429" else s.stats.server_errors) == 6


async def test_mapping_templates_map_sandbox_records() -> None:
    app = sandbox("moodle", records=RECORDS)
    async with moodle(app) as s:
        completions, _ = await read_all(s, "course_completions")
        users, _ = await read_all(s, "users")
    training = map_records("moodle", "TrainingRecord", completions)
    assert {t["status"] for t in training} == {"completed", "in-progress", "assigned"}
    assert all(bool(t.get("completedAt")) == (t["status"] == "completed") for t in training)
    assert all("@" in t["employeeRef"] and t["provider"] == "Moodle" for t in training)
    staff = map_records("moodle", "Employee", users)
    assert staff[0]["employeeNumber"] == "WC0001" and staff[0]["externalRefs"]["moodle"] == str(FIRST_USER)
