"""Moodle sandbox: the web service REST protocol of a self-hosted site (``https://{site}/webservice/rest/server.php``).

As implemented in ``moodle/moodle`` (``webservice/rest/server.php``, ``lib/db/services.php``,
``completion/classes/external.php``, ``user/externallib.php``, ``enrol/externallib.php``): every call is one
URL with ``wstoken``, ``wsfunction`` and ``moodlewsrestformat=json`` (XML otherwise), arguments as PHP-style
query or form fields (``criteria[0][key]=email``); GET and POST both work. Errors come back with **HTTP 200**
and an exception body, ``{"exception": "moodle_exception", "errorcode": "invalidtoken", "message": "Invalid token -
token not found"}``, so clients must read the body. Functions served here:

* ``core_webservice_get_site_info``: site name, the token's user and the functions it may call;
* ``core_user_get_users`` (``criteria`` of key/value; ``%`` is a wildcard for email): ``{"users", "warnings"}``;
* ``core_course_get_courses``: every course, the front page (``format: site``, id 1) included;
* ``core_enrol_get_enrolled_users`` (``courseid``): the enrolled users with ``roles`` and ``enrolledcourses``;
* ``core_completion_get_course_completion_status`` (``courseid``, ``userid``): ``{"completionstatus":
  {"completed", "aggregation", "completions": [{"type", "title", "status", "complete", "timecompleted",
  "details"}]}, "warnings": []}``; ``nocriteriaset`` for a course without completion criteria.

Moodle itself has no rate limiting; a throttle comes from the web server or proxy in front of it, so the sandbox
answers 429 with a plain-text body and ``Retry-After`` (a choice, not Moodle's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    rng_for,
)
from connectors.sandboxes.workforce import staff_member

TOKEN = "5c3f1e9a0b7d4c2e8f6a1b3c5d7e9f01"
SITE = "learning.willowcourtcare.example"
FIRST_USER = 3  # 1 is guest, 2 is admin
COURSES = (
    (2, "SAFE-L2", "Safeguarding Adults Level 2", True),
    (3, "MH-TH", "Moving and Handling Theory", True),
    (4, "IPC", "Infection Prevention and Control", True),
    (5, "FIRE", "Fire Safety Awareness", True),
    (6, "MEDS", "Medicines Management in Care Homes", True),
    (7, "DEM-T2", "Dementia Awareness Tier 2", True),
    (8, "WELCOME", "Welcome to Willow Court (no completion tracking)", False),
)
FUNCTIONS = ("core_webservice_get_site_info", "core_user_get_users", "core_course_get_courses",
             "core_enrol_get_enrolled_users", "core_completion_get_course_completion_status")


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def moodle_user(seed: int, u: int) -> dict[str, Any]:
    """A Moodle account for staff member ``u`` (id = FIRST_USER + u)."""
    s = staff_member(seed, u)
    first = datetime.combine(s.start_date, datetime.min.time(), UTC) + timedelta(hours=10)
    return {
        "id": FIRST_USER + u, "username": s.email.split("@")[0].replace(".", ""), "firstname": s.first_name,
        "lastname": s.last_name, "fullname": s.full_name, "email": s.email, "department": s.department,
        "institution": s.site, "idnumber": f"WC{u + 1:04d}", "firstaccess": _ts(first),
        "lastaccess": _ts(datetime(2026, 11, 20, tzinfo=UTC) - timedelta(hours=7 * u)), "auth": "manual",
        "suspended": not s.active, "confirmed": True, "lang": "en_gb", "theme": "", "timezone": "Europe/London",
        "mailformat": 1, "description": "", "descriptionformat": 1, "city": s.town, "country": "GB",
        "profileimageurlsmall": f"https://{SITE}/theme/image.php/boost/core/1/u/f2",
        "profileimageurl": f"https://{SITE}/theme/image.php/boost/core/1/u/f1",
    }


def enrolled(seed: int, course_id: int, n_users: int) -> list[int]:
    """User indexes enrolled on a course (most staff; new starters on the induction course only)."""
    r = rng_for(seed, "moodle.enrol", course_id)
    return [u for u in range(n_users) if r.random() < 0.8]


def completion(seed: int, course_id: int, u: int) -> dict[str, Any]:
    """The completion status of user ``u`` on a tracked course: two activities, all required."""
    r = rng_for(seed, f"moodle.completion.{course_id}", u)
    start = datetime(2025, 9, 1, 9, tzinfo=UTC) + timedelta(days=r.randrange(0, 400), minutes=r.randrange(0, 480))
    done_count = r.choice((2, 2, 2, 1, 0))
    completions = []
    for a in range(2):
        done = a < done_count
        when = _ts(start + timedelta(days=a * r.randrange(1, 6), minutes=r.randrange(5, 90))) if done else None
        title = "Activity completion"
        completions.append({"type": 4, "title": title, "status": "Yes" if done else "No", "complete": done,
                            "timecompleted": when, "details": {
                                "type": title, "criteria": f'<a href="https://{SITE}/mod/quiz/view.php?id='
                                f'{course_id * 100 + a}">{"Module quiz" if a else "E-learning module"}</a>',
                                "requirement": "Marking yourself complete" if a == 0 else "Achieving a passing grade",
                                "status": ""}})
    return {"completed": done_count == 2, "aggregation": 1, "completions": completions}


def _exception(errorcode: str, message: str, kind: str = "moodle_exception", debug: str | None = None) -> Response:
    body: dict[str, Any] = {"exception": kind, "errorcode": errorcode, "message": message}
    if debug:
        body["debuginfo"] = debug
    return JSONResponse(body)  # Moodle answers web service errors with HTTP 200


def _throttle(state: SandboxState) -> Response:
    resp = PlainTextResponse("429 Too Many Requests", status_code=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Moodle web service sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Moodle")
    seed = cfg.seed
    n_users = cfg.count("users", 60)
    users = [moodle_user(seed, u) for u in range(n_users)]
    course_ids = {c[0] for c in COURSES}
    enrolments = {cid: (list(range(n_users)) if cid == 8 else enrolled(seed, cid, n_users)) for cid in course_ids}
    app = FastAPI(title="Moodle web services sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"token": TOKEN}
    app.state.config = {"site": SITE, "course_ids": ",".join(str(c[0]) for c in COURSES if c[3])}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def course_row(c: tuple[int, str, str, bool]) -> dict[str, Any]:
        cid, short, full, tracked = c
        return {"id": cid, "shortname": short, "categoryid": 2, "categorysortorder": 10000 + cid, "fullname": full,
                "displayname": full, "idnumber": short, "summary": f"<p>{full} for care staff.</p>", "summaryformat": 1,
                "format": "topics", "showgrades": 1, "newsitems": 0, "startdate": _ts(datetime(2025, 9, 1, tzinfo=UTC)),
                "enddate": 0, "numsections": 3, "maxbytes": 0, "showreports": 0, "visible": 1, "groupmode": 0,
                "groupmodeforce": 0, "defaultgroupingid": 0, "timecreated": _ts(datetime(2025, 8, 1, tzinfo=UTC)),
                "timemodified": _ts(datetime(2025, 8, 20, tzinfo=UTC)), "enablecompletion": int(tracked),
                "completionnotify": 0, "lang": "", "forcetheme": "", "courseformatoptions": []}

    def int_arg(args: dict[str, str], name: str) -> int | None:
        value = args.get(name, "")
        return int(value) if value.lstrip("-").isdigit() else None

    async def serve(request: Request) -> Response:
        args: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            args.update({k: str(v) for k, v in form.items()})
        if args.get("wstoken") != TOKEN or state.faults.revoke_tokens:
            return _exception("invalidtoken", "Invalid token - token not found")
        if args.get("moodlewsrestformat") != "json":
            return Response('<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n</RESPONSE>\n',
                            media_type="application/xml")
        fn = args.get("wsfunction", "")
        if fn not in FUNCTIONS:
            return _exception("accessexception", "Access control exception", "webservice_access_exception")
        invalid = ("invalidparameter", "Invalid parameter value detected", "invalid_parameter_exception")
        if fn == "core_webservice_get_site_info":
            return JSONResponse({"sitename": "Willow Court Learning", "username": "carehub_ws", "firstname": "CareHub",
                                 "lastname": "Integration", "fullname": "CareHub Integration", "lang": "en_gb",
                                 "userid": 2, "siteurl": f"https://{SITE}", "release": "4.3.4+ (Build: 20240524)",
                                 "version": "2023100904.05", "functions": [{"name": f, "version": "2023100904.05"}
                                                                           for f in FUNCTIONS]})
        if fn == "core_user_get_users":
            key, value = args.get("criteria[0][key]"), args.get("criteria[0][value]")
            if not key or value is None:
                return _exception(*invalid[:2], invalid[2], "Missing required key in single structure: criteria")
            if key == "email":
                pattern = value.lower()
                found = [x for x in users if pattern == "%" or x["email"].lower() == pattern or
                         (pattern.endswith("%") and x["email"].lower().startswith(pattern[:-1]))]
            elif key in ("id", "username", "idnumber", "firstname", "lastname"):
                found = [x for x in users if str(x[key]).lower() == value.lower()]
            else:
                return JSONResponse({"users": [], "warnings": [{"item": key, "warningcode": "invalidfieldparameter",
                                                                "message": "The search key '" + key + "' is not supported,"
                                                                " look at the web service documentation"}]})
            return JSONResponse({"users": found, "warnings": []})
        if fn == "core_course_get_courses":
            site = {**course_row((1, "WCLEARN", "Willow Court Learning", False)), "format": "site", "categoryid": 0}
            return JSONResponse([site, *(course_row(c) for c in COURSES)])
        course_id = int_arg(args, "courseid")
        if course_id is None:
            return _exception(*invalid[:2], invalid[2], "Missing required key in single structure: courseid")
        if course_id not in course_ids:
            return _exception("invalidrecord", "Can't find data record in database table course.", "dml_missing_record_exception")
        course = next(c for c in COURSES if c[0] == course_id)
        if fn == "core_enrol_get_enrolled_users":
            out = []
            for u in enrolments[course_id]:
                x = users[u]
                out.append({k: x[k] for k in ("id", "username", "firstname", "lastname", "fullname", "email", "department",
                                              "firstaccess", "lastaccess", "description", "descriptionformat", "city",
                                              "country", "profileimageurlsmall", "profileimageurl")}
                           | {"lastcourseaccess": x["lastaccess"], "roles": [{"roleid": 5, "name": "", "shortname":
                                                                              "student", "sortorder": 0}],
                              "enrolledcourses": [{"id": c[0], "fullname": c[2], "shortname": c[1]} for c in COURSES
                                                  if u in enrolments[c[0]]]})
            return JSONResponse(out)
        user_id = int_arg(args, "userid")
        if user_id is None:
            return _exception(*invalid[:2], invalid[2], "Missing required key in single structure: userid")
        u = user_id - FIRST_USER
        if not 0 <= u < n_users or u not in enrolments[course_id]:
            return _exception("notenrolled", "User is not enrolled in this course")
        if not course[3]:
            return _exception("nocriteriaset", "No completion criteria set for this course")
        return JSONResponse({"completionstatus": completion(seed, course_id, u), "warnings": []})

    app.add_api_route("/webservice/rest/server.php", serve, methods=["GET", "POST"], response_model=None)
    return app
