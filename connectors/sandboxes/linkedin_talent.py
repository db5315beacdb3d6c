"""LinkedIn Talent Solutions sandbox: the Job Posting API v2 (``https://api.linkedin.com/v2``).

Built from LinkedIn's own OpenAPI (``linkedin-developers/job-posting-development-tools``
``OpenAPI-specification/job_posting_v2.yaml``, copied in ``vendor-specs/linkedin/``):

* ``POST /oauth/v2/accessToken`` (www.linkedin.com): two-legged OAuth, ``grant_type=client_credentials`` with
  ``client_id``/``client_secret`` in the form; ``{"access_token", "expires_in": 1800}``.
* ``POST /v2/simpleJobPostings`` with ``x-restli-method: batch_create`` and ``{"elements": [...]}``: creates,
  updates, renews or closes postings (``jobPostingOperationType``). The reply is always 200 with one element per
  input: ``{"id": "urn:li:simpleJobPostingTask:...", "status": 202, "location": ...}`` or, for an element that
  fails validation, ``{"error": {"message": "ERROR :: /title :: ...", "status": 422}, "status": 422}``.
* ``GET /v2/simpleJobPostingTasks?ids=...&ids=...``: the asynchronous task outcomes, a Rest.li BATCH_GET reply
  ``{"results": {urn: {id, status, jobPosting | errorMessage}}, "statuses": {}, "errors": {}}``. A new task is
  ``IN_PROGRESS`` on its first poll, then ``SUCCEEDED`` or ``FAILED``; unknown ids land in ``errors``.
* Errors as in the spec: 401 ``{"serviceErrorCode": 65600, "message": "Invalid access token", "status": 401}``
  (65602 for an expired token), 403 for a contract the caller may not post to, 400 for bad batch keys.

Apply Connect (learn.microsoft.com "Receive Applications"): LinkedIn POSTs each application to the partner's
``jobApplicationWebhookUrl`` with ``X-LI-Signature: hmacsha256=<hex HMAC-SHA256 of the escaped-Unicode JSON body,
keyed with the client secret>``, re-sends up to 6 times on any reply other than 200, and turns the job into an
off-site apply after a failed first delivery. ``POST /_sandbox/apply`` makes a candidate apply; the payload's field
names are modelled on that guide and not confirmed one by one.

Not in the spec, so chosen here and marked as such: the throttle reply (429 with LinkedIn's usual
``{"message": "Resource level throttle ...", "status": 429}``), and a repeated CREATE of the same
``externalJobPostingId`` resolving to the posting already listed rather than a second one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    BASE_TIME,
    CARE_HOMES,
    JOB_TITLES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    pools,
    rng_for,
    send_webhook,
    stable_uuid,
    uuid_index,
)

CLIENT_ID = "86carehubli7x2"
CLIENT_SECRET = "sandbox-linkedin-secret-5f2b9c"
ORGANIZATION = "urn:li:organization:2414183"
CONTRACT = "urn:li:contract:770011"
TASK_PREFIX = "urn:li:simpleJobPostingTask:"
POSTING_PREFIX = "urn:li:jobPosting:"
FIRST_POSTING = 3_870_000_001
OPERATIONS = ("CREATE", "UPDATE", "RENEW", "CLOSE")
EMPLOYMENT = ("FULL_TIME", "PART_TIME", "CONTRACT", "INTERNSHIP", "TEMPORARY", "VOLUNTEER", "OTHER")
EXPERIENCE = ("ENTRY_LEVEL", "MID_SENIOR_LEVEL", "DIRECTOR", "EXECUTIVE", "INTERNSHIP", "ASSOCIATE", "NOT_APPLICABLE")
REQUIRED = ("companyApplyUrl", "externalJobPostingId", "jobPostingOperationType", "description", "title",
            "listedAt", "location")
HEALTH_CARE_INDUSTRY = "urn:li:industry:14"  # "Hospitals and Health Care" in LinkedIn's industry codes


def _description(title: str, home: str, town: str) -> str:
    return (f"<p>{home} in {town} is looking for a caring {title} to join our friendly team. You will support "
            "older residents, including people living with dementia, to live well every day.</p>"
            "<ul><li>Paid DBS check and full Care Certificate training</li><li>Paid breaks and 28 days holiday"
            "</li><li>Blue Light Card and employee assistance programme</li></ul>")


def seeded_posting(seed: int, i: int) -> dict[str, Any]:
    """The ``i``-th posting the care group listed before the sandbox started (as LinkedIn holds it)."""
    r = rng_for(seed, "linkedin.postings", i)
    p = pools(seed)
    title = JOB_TITLES[i % len(JOB_TITLES)]
    home = CARE_HOMES[i % len(CARE_HOMES)]
    town = p.towns[r.randrange(len(p.towns))]
    listed = BASE_TIME + timedelta(days=i)
    ext = f"WCN-JOB-{i + 1:05d}"
    return {
        "integrationContext": ORGANIZATION, "companyApplyUrl": f"https://careers.willowcourtcare.co.uk/jobs/{ext}",
        "externalJobPostingId": ext, "jobPostingOperationType": "CREATE", "title": title,
        "description": _description(title, home, town), "listedAt": int(listed.timestamp() * 1000),
        "location": f"{town}, United Kingdom", "categories": ["hcpr"], "industries": [HEALTH_CARE_INDUSTRY],
        "companyJobCode": ext, "workRemoteAllowed": False,
        "employmentStatus": r.choice(("FULL_TIME", "PART_TIME", "PART_TIME", "TEMPORARY")),
        "experienceLevel": "ENTRY_LEVEL" if "Assistant" in title else "MID_SENIOR_LEVEL",
        "expireAt": int((listed + timedelta(days=30)).timestamp() * 1000), "listingType": "BASIC",
    }


def seeded_task(seed: int, i: int, n_postings: int) -> dict[str, Any]:
    """Outcome of the ``i``-th task run before the sandbox started (every 9th failed on its location)."""
    task = TASK_PREFIX + stable_uuid(seed, "linkedin.tasks", i)
    if i % 9 == 8:
        ext = f"WCN-JOB-{i % max(1, n_postings) + 1:05d}"
        return {"id": task, "status": "FAILED", "errorMessage": (
            f"Job {{partner=urn:li:jobPostingPartner:5501, partnerJobCode={ext}}} was dropped: true\n\n"
            "Invalid Field: /location; ")}
    return {"id": task, "status": "SUCCEEDED", "jobPosting": f"{POSTING_PREFIX}{FIRST_POSTING + i % max(1, n_postings)}"}


def seeded_task_ids(seed: int, n: int) -> list[str]:
    """URNs of the seeded tasks (what a partner would have kept from earlier POSTs)."""
    return [TASK_PREFIX + stable_uuid(seed, "linkedin.tasks", i) for i in range(n)]


QUESTIONS = ("Do you have the right to work in the UK?", "Do you hold a full UK driving licence?",
             "Can you work night shifts and weekends?")


def application(seed: int, n: int, posting: dict[str, Any]) -> dict[str, Any]:
    """Candidate ``n`` applying on LinkedIn for ``posting`` (Apply Connect delivery body)."""
    r = rng_for(seed, "linkedin.applications", n)
    p = pools(seed)
    first, last = p.first_names[r.randrange(len(p.first_names))], p.last_names[r.randrange(len(p.last_names))]
    applied = BASE_TIME + timedelta(days=600 + n, hours=r.randrange(7, 22))
    return {
        "jobApplicationId": f"urn:li:jobApplication:{6_100_000 + n}", "jobPosting": posting["jobPosting"],
        "externalJobPostingId": posting["externalJobPostingId"], "integrationContext": ORGANIZATION,
        "appliedAt": int(applied.timestamp() * 1000),
        "applicant": {"firstName": first, "lastName": last,
                      "email": f"{first}.{last}{n}@example.co.uk".lower().replace(" ", ""),
                      "phoneNumber": f"+44 7{r.randrange(100, 999)} {r.randrange(100000, 999999)}",
                      "location": p.towns[r.randrange(len(p.towns))] + ", United Kingdom"},
        "resume": {"fileName": f"{first}_{last}_CV.pdf", "mediaType": "application/pdf",
                   "downloadUrl": f"https://www.linkedin.com/dms/prv/resume/{6_100_000 + n}"},
        "questionResponses": [{"question": q, "answer": r.choice(("Yes", "Yes", "No"))} for q in QUESTIONS],
    }


def _error(status: int, message: str, code: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "status": status}
    if code is not None:
        body = {"serviceErrorCode": code, **body}
    return JSONResponse(body, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "Resource level throttle APPLICATION MINUTE limit for calls to this resource is reached.")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def _fail(field: str, reason: str) -> str:
    return f"ERROR :: /{field} :: {reason}\n"


def validate_element(el: Any) -> str | None:
    """The spec's element checks (foundation schema and extensions); an error message or None."""
    if not isinstance(el, dict):
        return _fail("", "element is not a record")
    for name in REQUIRED:
        if el.get(name) in (None, ""):
            return _fail(name, "field is required but not found and has no default value")
    if not el.get("integrationContext") and not el.get("companyName"):
        return _fail("integrationContext", "field is required but not found and has no default value")
    ctx = el.get("integrationContext")
    if ctx is not None and not (isinstance(ctx, str) and ctx.startswith("urn:li:organization:")
                                and ctx.rsplit(":", 1)[1].isdigit()):
        return _fail("integrationContext", f'"{ctx}" is not a urn:li:organization URN')
    for name, allowed in (("jobPostingOperationType", OPERATIONS), ("employmentStatus", EMPLOYMENT),
                          ("experienceLevel", EXPERIENCE), ("listingType", ("PREMIUM", "BASIC")),
                          ("availability", ("PUBLIC", "PRIVATE_TO_ATS_INTEGRATION"))):
        if name in el and el[name] not in allowed:
            return _fail(name, f'"{el[name]}" is not an enum symbol')
    if not isinstance(el["title"], str) or len(el["title"]) > 200:
        return _fail("title", "must be text of at most 200 characters")
    if not isinstance(el["externalJobPostingId"], str) or len(el["externalJobPostingId"]) > 200:
        return _fail("externalJobPostingId", "must be text of at most 200 characters")
    desc = el["description"]
    if not isinstance(desc, str) or not 100 <= len(desc) <= 25000:
        return _fail("description", f"length {len(str(desc))} is outside 100 to 25000 characters")
    listed = el["listedAt"]
    if not isinstance(listed, int) or isinstance(listed, bool):
        return _fail("listedAt", f'"{listed}" is not a long')
    if listed > (time.time() + 300) * 1000:
        return _fail("listedAt", "must not be a future time")
    expire = el.get("expireAt")
    if expire is not None and (not isinstance(expire, int) or expire > listed + 180 * 86_400_000):
        return _fail("expireAt", "must be at most 180 days after listedAt")
    if el.get("listingType") == "PREMIUM" and not el.get("contract"):
        return _fail("contract", "field is required but not found and has no default value")
    for name in ("industries", "categories"):
        if name in el and not (isinstance(el[name], list) and all(isinstance(x, str) for x in el[name])):
            return _fail(name, "must be an array of strings")
    return None


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The LinkedIn Job Posting sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "LinkedIn")
    seed = cfg.seed
    n_postings = cfg.count("job_postings", 40)
    n_tasks = cfg.count("job_posting_tasks", 60)
    # Postings keyed by (organisation or company, externalJobPostingId); the seeded ones are all listed.
    postings: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(n_postings):
        el = seeded_posting(seed, i)
        postings[(ORGANIZATION, el["externalJobPostingId"])] = {
            **el, "jobPosting": f"{POSTING_PREFIX}{FIRST_POSTING + i}", "state": "LISTED"}
    tasks: dict[str, dict[str, Any]] = {}  # new tasks: final outcome plus how many times it was polled
    state.extra.update(postings=postings, tasks=tasks)
    app = FastAPI(title="LinkedIn Job Posting API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    app.state.config = {"organization_urn": ORGANIZATION, "task_ids": ",".join(seeded_task_ids(seed, min(n_tasks, 20)))}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle, exempt=("/oauth/",))
    add_control_routes(app, state)

    @app.post("/_sandbox/apply")
    async def apply(request: Request) -> dict[str, Any]:
        """A candidate applies on LinkedIn for a listed job: deliver it, re-sending up to 6 times on non-200."""
        ask = await request.json()
        key = (ORGANIZATION, str(ask.get("externalJobPostingId", "WCN-JOB-00001")))
        posting = postings[key]
        applications = state.extra.setdefault("applications", [])
        body = application(seed, len(applications), posting)
        applications.append(body)
        secret = CLIENT_SECRET

        def headers_for(raw: bytes) -> dict[str, str]:
            return {"X-LI-Signature": "hmacsha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}

        transport = getattr(app.state, "webhook_transport", None)
        statuses = [await send_webhook(state, body, headers_for, transport=transport)]
        if statuses[0] != 200:
            posting["applyMode"] = "OFFSITE"  # LinkedIn's rule after a failed first delivery
        while statuses[-1] != 200 and len(statuses) < 7:
            statuses.append(await send_webhook(state, body, headers_for, transport=transport))
        return {"delivered": statuses[-1] == 200, "attempts": len(statuses), "statuses": statuses,
                "application": body["jobApplicationId"]}

    @app.post("/oauth/v2/accessToken")
    async def access_token(request: Request) -> Response:
        form = await request.form()
        grant = str(form.get("grant_type", ""))
        state.token_grants[grant] = state.token_grants.get(grant, 0) + 1
        if grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type",
                                 "error_description": "A required parameter \"grant_type\" is missing or invalid"},
                                status_code=400)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"},
                                status_code=401)
        issued = state.issue_tokens()
        return JSONResponse({"access_token": issued["access_token"], "expires_in": issued["expires_in"]})

    def denied(request: Request) -> Response | None:
        token = bearer(request)
        if state.token_valid(token):
            return None
        if token in state.access_tokens and not state.faults.revoke_tokens:
            return _error(401, "The token used in the request has expired", 65602)
        return _error(401, "Invalid access token", 65600)

    def run(el: dict[str, Any]) -> dict[str, Any]:
        """Apply one valid element now; the task reports the outcome asynchronously."""
        owner = str(el.get("integrationContext") or el.get("companyName"))
        key = (owner, str(el["externalJobPostingId"]))
        op = el["jobPostingOperationType"]
        current = postings.get(key)
        dropped = (f"Job {{partner=urn:li:jobPostingPartner:5501, partnerJobCode={key[1]}}} was dropped: true\n\n")
        if op == "CREATE":
            if current is not None and current["state"] == "LISTED":
                return {"status": "SUCCEEDED", "jobPosting": current["jobPosting"]}  # a repeat, not a second job
            urn = current["jobPosting"] if current else f"{POSTING_PREFIX}{FIRST_POSTING + len(postings)}"
            postings[key] = {**el, "jobPosting": urn, "state": "LISTED"}
            return {"status": "SUCCEEDED", "jobPosting": urn}
        if current is None:
            return {"status": "FAILED", "errorMessage": dropped + "No job with this externalJobPostingId was "
                                                                  "created; send CREATE first. "}
        if op == "CLOSE":
            current.update(state="CLOSED", jobPostingOperationType="CLOSE")
        elif op == "RENEW":
            current.update(state="LISTED", expireAt=int(current.get("expireAt") or current["listedAt"])
                           + 30 * 86_400_000, jobPostingOperationType="RENEW")
        else:
            current.update({k: v for k, v in el.items() if k != "jobPostingOperationType"},
                           jobPostingOperationType="UPDATE")
        return {"status": "SUCCEEDED", "jobPosting": current["jobPosting"]}

    @app.post("/v2/simpleJobPostings")
    async def simple_job_postings(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        if request.headers.get("x-restli-method", "").lower() != "batch_create":
            return _error(400, "Header x-restli-method must be batch_create for this resource")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body is not valid JSON")
        elements = body.get("elements") if isinstance(body, dict) else None
        if not isinstance(elements, list) or not elements:
            return _error(400, "Request body must carry a non-empty `elements` array")
        for el in elements:
            contract = el.get("contract") if isinstance(el, dict) else None
            if contract is not None and contract != CONTRACT:
                return _error(403, f"Caller is not authorized to access the jobs for contract: {contract}", 65600)
        out: list[dict[str, Any]] = []
        for el in elements:
            problem = validate_element(el)
            if problem is not None:
                out.append({"error": {"message": problem, "status": 422}, "status": 422})
                continue
            task_id = TASK_PREFIX + stable_uuid(seed, "linkedin.new-tasks", len(tasks))
            tasks[task_id] = {"outcome": run(el), "polls": 0}
            out.append({"id": task_id, "status": 202,
                        "location": "/simpleJobPostings/" + quote(task_id, safe="")})
        return JSONResponse({"elements": out})

    @app.get("/v2/simpleJobPostingTasks")
    async def simple_job_posting_tasks(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        ids = request.query_params.getlist("ids")
        if not ids or any(not i.startswith(TASK_PREFIX) for i in ids):
            return _error(400, "Batch key parameter value is invalid")
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for task_id in ids:
            if task_id in tasks:
                entry = tasks[task_id]
                entry["polls"] += 1
                results[task_id] = ({"id": task_id, "status": "IN_PROGRESS"} if entry["polls"] == 1
                                    else {"id": task_id, **entry["outcome"]})
                continue
            i = uuid_index(task_id[len(TASK_PREFIX):])
            if i is not None and 0 <= i < n_tasks and TASK_PREFIX + stable_uuid(seed, "linkedin.tasks", i) == task_id:
                results[task_id] = seeded_task(seed, i, n_postings)
            else:
                errors[task_id] = {"status": 404, "message": f"Task {task_id} does not exist or has expired"}
        return JSONResponse({"results": results, "statuses": {}, "errors": errors})

    return app
