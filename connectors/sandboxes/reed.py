"""Reed sandbox: the Reed Jobseeker API 1.0 (``https://www.reed.co.uk/api/1.0``).

As documented on reed.co.uk/developers/jobseeker and used by client code: HTTP Basic auth with the API key as
the user name and an empty password; ``GET /search`` with ``keywords``, ``locationName``,
``distanceFromLocation``, ``employerId``, ``employerProfileId``, ``permanent``/``contract``/``temp``,
``partTime``/``fullTime``, ``minimumSalary``/``maximumSalary``, paged by ``resultsToTake`` (at most 100) and
``resultsToSkip``; the reply is ``{"results": [...], "ambiguousLocations": [], "totalResults": n}`` with
``dd/mm/yyyy`` dates. ``GET /jobs/{jobId}`` gives one job's details (full description, contract type,
salary text, url). The API is read only: Reed's recruiter posting products are not publicly documented.

Not published, so chosen here: the 401 body (ASP.NET Web API's ``{"Message": "Authorization has been denied
for this request."}``) and the throttle reply (429 with ``Retry-After``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    CARE_HOMES,
    JOB_TITLES,
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    new_state,
    pools,
    rng_for,
)
from connectors.sandboxes.handlers import basic_auth

API_KEY = "3f6c1d2e-8a9b-4c7d-9e0f-reedsandbox01"
EMPLOYER_ID = 612345
EMPLOYER_NAME = "Willow Court Care Group"
OTHER_EMPLOYERS = ((598001, "Meadow View Care Ltd"), (598002, "Sunrise Home Care Agency"),
                   (598003, "Hillcrest Nursing Homes"))
FIRST_JOB = 51_200_001
MAX_TAKE = 100
PAY = {"Care Assistant": (11.44, 12.50), "Senior Care Assistant": (12.60, 13.40), "Registered Nurse": (21.50, 24.00),
       "Activities Coordinator": (11.75, 12.40), "Deputy Manager": (38000, 42000), "Chef": (12.00, 13.50),
       "Domestic Assistant": (11.44, 11.80), "Night Care Assistant": (12.10, 13.00), "Maintenance Officer": (12.50, 14.00)}


def _uk(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def job(seed: int, i: int) -> dict[str, Any]:
    """The ``i``-th live advert (three in four are the care group's own)."""
    r = rng_for(seed, "reed.jobs", i)
    p = pools(seed)
    own = i % 4 != 3
    employer_id, employer_name = (EMPLOYER_ID, EMPLOYER_NAME) if own else OTHER_EMPLOYERS[i % len(OTHER_EMPLOYERS)]
    title = JOB_TITLES[r.randrange(len(JOB_TITLES))]
    home = CARE_HOMES[i % len(CARE_HOMES)]
    town = p.towns[r.randrange(len(p.towns))]
    low, high = PAY[title]
    hourly = low < 1000
    posted = date(2026, 11, 1) - timedelta(days=r.randrange(0, 40))
    kind = r.choice(("permanent", "permanent", "permanent", "contract", "temp"))
    part = r.random() < 0.35
    snippet = (f"{home} is recruiting a {title} in {town}. Join a friendly team supporting older people to live "
               "well, with paid training, a free DBS check and flexible shifts... ")
    return {
        "jobId": FIRST_JOB + i, "employerId": employer_id, "employerName": employer_name,
        "employerProfileId": employer_id * 10 + (i % len(CARE_HOMES)) if own else None,
        "employerProfileName": home if own else None, "jobTitle": title, "locationName": town,
        "minimumSalary": low, "maximumSalary": high, "currency": "GBP", "expirationDate": _uk(posted + timedelta(days=42)),
        "date": _uk(posted), "jobDescription": snippet, "applications": r.randrange(0, 60),
        "jobUrl": f"https://www.reed.co.uk/jobs/{title.lower().replace(' ', '-')}/{FIRST_JOB + i}",
        "_detail": {"partTime": part, "fullTime": not part, "contractType": kind.capitalize(),
                    "salaryType": "per hour" if hourly else "per annum", "salary":
                    (f"£{low:.2f} - £{high:.2f} per hour" if hourly else f"£{low:,.0f} - £{high:,.0f} per annum"),
                    "externalUrl": None},
    }


def _listing(j: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in j.items() if k != "_detail"}


def _detail(j: dict[str, Any]) -> dict[str, Any]:
    out = {**_listing(j), **j["_detail"]}
    out["jobDescription"] = (f"<p>{j['jobDescription'].rstrip('. ')}.</p><p>You will provide person-centred care, "
                             "follow care plans and record notes accurately.</p>")
    out["datePosted"] = out.pop("date")
    out["salary"] = j["_detail"]["salary"]
    return out


def _throttle(state: SandboxState) -> Response:
    resp = JSONResponse({"Message": "Too many requests. Please slow down."}, status_code=429)
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Reed Jobseeker API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Reed")
    seed = cfg.seed
    jobs = [job(seed, i) for i in range(cfg.count("jobs", 160))]
    app = FastAPI(title="Reed Jobseeker API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}
    app.state.config = {"employer_id": str(EMPLOYER_ID), "keywords": "care assistant", "location": ""}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def denied(request: Request) -> Response | None:
        user, _ = basic_auth(request)
        if user != API_KEY or state.faults.revoke_tokens:
            return JSONResponse({"Message": "Authorization has been denied for this request."}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="reed.co.uk"'})
        return None

    def flag(q: Any, name: str) -> bool:
        return str(q.get(name, "")).lower() == "true"

    @app.get("/api/1.0/search")
    async def search(request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        q = request.query_params
        try:
            take = min(MAX_TAKE, max(1, int(q.get("resultsToTake", "100"))))
            skip = max(0, int(q.get("resultsToSkip", "0")))
            employer = int(q["employerId"]) if q.get("employerId") else None
            profile = int(q["employerProfileId"]) if q.get("employerProfileId") else None
            min_salary = float(q["minimumSalary"]) if q.get("minimumSalary") else None
        except ValueError:
            return JSONResponse({"Message": "The request is invalid."}, status_code=400)
        words = [w.lower() for w in q.get("keywords", "").split() if w]
        where = q.get("locationName", "").lower()
        kinds = {k for k in ("permanent", "contract", "temp") if flag(q, k)}

        def keep(j: dict[str, Any]) -> bool:
            text = f"{j['jobTitle']} {j['jobDescription']} {j['employerName']}".lower()
            detail = j["_detail"]
            return ((employer is None or j["employerId"] == employer)
                    and (profile is None or j["employerProfileId"] == profile)
                    and all(w in text for w in words) and (not where or where in j["locationName"].lower())
                    and (not kinds or detail["contractType"].lower() in kinds)
                    and not (flag(q, "partTime") and not detail["partTime"])
                    and not (flag(q, "fullTime") and not detail["fullTime"])
                    and (min_salary is None or j["maximumSalary"] >= min_salary))

        found = [j for j in jobs if keep(j)]
        return JSONResponse({"results": [_listing(j) for j in found[skip:skip + take]], "ambiguousLocations": [],
                             "totalResults": len(found)})

    @app.get("/api/1.0/jobs/{job_id}")
    async def details(job_id: str, request: Request) -> Response:
        if (d := denied(request)) is not None:
            return d
        i = int(job_id) - FIRST_JOB if job_id.isdigit() else -1
        if not 0 <= i < len(jobs):
            return JSONResponse({"Message": f"No job found with id {job_id}."}, status_code=404)
        return JSONResponse(_detail(jobs[i]))

    return app
