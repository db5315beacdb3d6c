"""Lattice sandbox: the Lattice public API v1 (``https://api.latticehq.com/v1``).

From the Airbyte Lattice scaffold (``source-lattice`` manifest and ``schemas/review.json``) and
vendors-finance-hr.md 2.9: Bearer API key; lists are ``{"object": "list", "data": [...], "endingCursor": ...,
"hasMore": ...}`` paged by ``limit`` and ``startingAfter`` (the previous page's ``endingCursor``); objects refer to
each other as ``{id, object, url}``; ``/users``, ``/reviewCycles``, ``/reviewCycle/{id}/reviews``. A review is one
reviewer's answer to one question about one reviewee (``reviewType`` Self, Peer, Upward, Downward or
ScoredAttribute) with ``response{rating, choices, comment, commentSentiment, createdAt, updatedAt}`` and times in
seconds since 1970; 403 and 404 on some objects are normal. Throttling is ``429`` with ``Retry-After`` (limits
unpublished). Error bodies (``{"error": {"message": ...}}``) are the sandbox's choice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandboxes.common import (
    FaultMiddleware,
    SandboxConfig,
    SandboxState,
    add_control_routes,
    bearer,
    new_state,
    rng_for,
)
from connectors.sandboxes.workforce import staff_member

API_KEY = "lattice_sk_sandbox_2f9a7c1e5b3d"
BASE = "https://api.latticehq.com/v1"
MAX_LIMIT = 100
CYCLES = (("2025 Annual Review", "ended", datetime(2025, 3, 1, tzinfo=UTC)),
          ("2025 Mid-Year Check-in", "ended", datetime(2025, 9, 1, tzinfo=UTC)),
          ("2026 Annual Review", "active", datetime(2026, 3, 1, tzinfo=UTC)))
QUESTIONS = (("Overall performance this period", True), ("Living our care values: kindness and dignity", True),
             ("What went well?", False), ("What should they focus on next?", False))
COMMENTS = ("Consistently kind and patient with residents, especially during mealtimes.",
            "Great team player on night shifts; always completes handovers thoroughly.",
            "Medication rounds are accurate; would benefit from the dementia champion course.",
            "Needs to complete care plan reviews on time; support offered through supervision.",
            "Leads activities with real enthusiasm; families often mention them.")


def lid(kind: str, i: int) -> str:
    """A Lattice-style opaque id."""
    return hashlib.sha1(f"{kind}:{i}".encode(), usedforsecurity=False).hexdigest()[:20]


def ref(kind: str, ident: str) -> dict[str, str]:
    """``{id, object, url}`` reference."""
    return {"id": ident, "object": kind, "url": f"{BASE}/{kind}/{ident}"}


def lattice_user(seed: int, i: int) -> dict[str, Any]:
    """A Lattice user for staff member ``i``."""
    s = staff_member(seed, i)
    return {"id": lid("user", i), "object": "user", "url": f"{BASE}/user/{lid('user', i)}", "name": s.full_name,
            "preferredName": s.known_as, "email": s.email, "title": s.job_title,
            "status": "ACTIVE" if s.active else "DEACTIVATED", "externalUserId": f"WC{i + 1:04d}",
            "startDate": s.start_date.isoformat(), "department": ref("department", lid("dept", len(s.department))),
            "manager": ref("user", lid("user", 0)) if i else None,
            "createdAt": int(datetime(2024, 1, 2, tzinfo=UTC).timestamp()) + i * 60,
            "updatedAt": int(datetime(2026, 5, 1, tzinfo=UTC).timestamp()) + i * 60}


def reviews_for(seed: int, c: int, n_users: int) -> list[dict[str, Any]]:
    """Every review of cycle ``c``: for each reviewee, a self and a manager (Downward) review of each question."""
    out = []
    start = CYCLES[c][2]
    for u in range(1, n_users):
        for kind, reviewer in (("Self", u), ("Downward", 0)):
            r = rng_for(seed, f"lattice.review.{c}.{kind}", u)
            declined = kind == "Self" and r.random() < 0.05
            done = CYCLES[c][1] == "ended" or r.random() < 0.6
            submitted = start + timedelta(days=r.randrange(3, 25), hours=r.randrange(8, 18))
            for q, (text, rated) in enumerate(QUESTIONS):
                created = int((start + timedelta(days=1)).timestamp())
                rid = lid("review", ((c * 10_000 + u) * 2 + (kind == "Self")) * 10 + q)
                out.append({
                    "id": rid, "object": "review", "url": f"{BASE}/review/{rid}",
                    "reviewee": ref("user", lid("user", u)), "reviewer": ref("user", lid("user", reviewer)),
                    "question": ref("question", lid("question", q)),
                    "questionRevision": ref("questionRevision", lid("questionRevision", q)),
                    "competency": ref("competency", lid("competency", 1)) if q == 1 else None, "goal": None,
                    "reviewType": kind, "response": None if not done or declined else {
                        "rating": r.randrange(2, 6) if rated else None, "choices": None,
                        "comment": None if rated else r.choice(COMMENTS),
                        "commentSentiment": None if rated else round(r.uniform(5, 9.5), 1),
                        "createdAt": created, "updatedAt": int(submitted.timestamp())},
                    "calibratedResponse": None, "submittedAt": int(submitted.timestamp()) if done and not declined
                    else None, "declinedAt": int(submitted.timestamp()) if declined else None,
                    "calibrationEnded": CYCLES[c][1] == "ended",
                    "_question_text": text,
                })
    return out


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)


def _throttle(state: SandboxState) -> Response:
    resp = _error(429, "Too many requests")
    if state.faults.retry_after is not None:
        resp.headers["Retry-After"] = state.faults.retry_after
    return resp


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """The Lattice API sandbox app."""
    cfg = config or SandboxConfig()
    state = new_state(cfg, "Lattice")
    seed = cfg.seed
    n_users = cfg.count("users", 60)
    users = [lattice_user(seed, i) for i in range(n_users)]
    cycles = [{"id": lid("cycle", c), "object": "reviewCycle", "url": f"{BASE}/reviewCycle/{lid('cycle', c)}",
               "name": name, "state": st, "createdAt": int(at.timestamp()), "launchedAt": int(at.timestamp()),
               "endedAt": int((at + timedelta(days=42)).timestamp()) if st == "ended" else None}
              for c, (name, st, at) in enumerate(CYCLES)]
    reviews = {lid("cycle", c): [{k: v for k, v in r.items() if not k.startswith("_")}
                                 for r in reviews_for(seed, c, n_users)] for c in range(len(CYCLES))}
    app = FastAPI(title="Lattice API sandbox (CareHub)")
    app.state.sandbox = state
    app.state.credentials = {"api_key": API_KEY}
    app.state.config = {}
    app.add_middleware(FaultMiddleware, state=state, throttle=_throttle)
    add_control_routes(app, state)

    def page(request: Request, rows: list[dict[str, Any]]) -> Response:
        if bearer(request) != API_KEY or state.faults.revoke_tokens:
            return _error(401, "Unauthorized: invalid API key")
        q = request.query_params
        try:
            limit = min(MAX_LIMIT, max(1, int(q.get("limit", "25"))))
        except ValueError:
            return _error(400, "limit must be a number")
        start = 0
        after = q.get("startingAfter")
        if after:
            ids = [r["id"] for r in rows]
            if after not in ids:
                return _error(400, f"Invalid cursor: {after}")
            start = ids.index(after) + 1
        chunk = rows[start:start + limit]
        more = start + limit < len(rows)
        return JSONResponse({"object": "list", "data": chunk, "hasMore": more,
                             "endingCursor": chunk[-1]["id"] if chunk else None})

    @app.get("/v1/users")
    async def list_users(request: Request) -> Response:
        return page(request, users)

    @app.get("/v1/reviewCycles")
    async def list_cycles(request: Request) -> Response:
        return page(request, cycles)

    @app.get("/v1/reviewCycle/{cycle_id}/reviews")
    async def list_reviews(cycle_id: str, request: Request) -> Response:
        if cycle_id not in reviews:
            if bearer(request) != API_KEY:
                return _error(401, "Unauthorized: invalid API key")
            return _error(404, f"Review cycle {cycle_id} not found")
        return page(request, reviews[cycle_id])

    return app
