"""Who may call what: the role matrix as data, enforced by one dependency per operation.

* manager: designs and syncs the integrations they created (``own``), reads their own;
* onboarding: reads everything and previews mappings (migration work), changes nothing;
* admin: everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.deps import ApiUser, context
from app.api.problems import ProblemError
from app.api.strict import check_request
from app.context import AppContext
from storage.integrations import NotFound, get_integration
from storage.models import Integration
from storage.users import user_for_token

MANAGER, ONBOARDING, ADMIN = "manager", "onboarding", "admin"
ALL = frozenset({MANAGER, ONBOARDING, ADMIN})
bearer = HTTPBearer(auto_error=False, description="An API token from `carehub token create` or the Account page")


@dataclass(frozen=True, slots=True)
class Rule:
    """Roles allowed to run an operation; ``own`` limits managers to integrations they created."""

    roles: frozenset[str]
    own: bool = True


READ = Rule(ALL)
DESIGN = Rule(frozenset({MANAGER, ADMIN}))

ROLE_MATRIX: dict[str, Rule] = {
    "listAvailableIntegrations": Rule(ALL, own=False),
    "configureIntegration": Rule(frozenset({MANAGER, ADMIN}), own=False),
    "updateIntegration": DESIGN,
    "deleteIntegration": DESIGN,
    "getIntegrationStatus": READ,
    "startSync": DESIGN,
    "getSyncStatus": READ,
    "updateSyncSettings": DESIGN,
    "getSyncHistory": READ,
    "startManualSync": DESIGN,
    "getFieldMappings": READ,
    "updateFieldMappings": DESIGN,
    "testMapping": Rule(ALL),
    "getMappingTemplates": READ,
    "createWebhook": DESIGN,
    "listWebhooks": READ,
    "updateWebhook": DESIGN,
    "deleteWebhook": DESIGN,
    "listErrors": READ,
    "retryFailed": DESIGN,
    "resolveError": DESIGN,
    "healthCheck": Rule(ALL, own=False),
}


def authenticate(ctx: AppContext = Depends(context),
                 credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> ApiUser:
    """The caller behind ``Authorization: Bearer <token>``, or a 401 problem."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials.strip():
        raise ProblemError(401, "Send an API token as 'Authorization: Bearer <token>'.",
                           headers={"WWW-Authenticate": "Bearer"})
    with ctx.db.session() as session:
        user = user_for_token(session, credentials.credentials.strip())
        if user is None or user.id is None:
            raise ProblemError(401, "The API token is unknown or revoked.",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return ApiUser(id=user.id, email=user.email, role=user.role)


def allowed(operation: str, role: str) -> bool:
    """True when ``role`` may run ``operation`` at all (ownership is checked separately)."""
    return role in ROLE_MATRIX[operation].roles


def authorize(operation: str) -> Callable[..., Awaitable[ApiUser]]:
    """A dependency: the caller, if their role may run ``operation``; 401/403 problems otherwise."""
    rule = ROLE_MATRIX[operation]

    async def check(request: Request, user: ApiUser = Depends(authenticate)) -> ApiUser:
        if user.role not in rule.roles:
            raise ProblemError(403, f"Your role '{user.role}' may not do this; it needs one of: "
                                    f"{', '.join(sorted(rule.roles))}.")
        await check_request(request)
        return user

    check.__name__ = f"authorize_{operation}"
    return check


def check_owner(operation: str, user: ApiUser, integration: Integration) -> None:
    """Managers act only on integrations they created (when the operation's rule says ``own``)."""
    if ROLE_MATRIX[operation].own and user.role == MANAGER and integration.created_by != user.email:
        raise ProblemError(403, "Managers may only work on integrations they created; ask an admin.")


def owned_integration(operation: str) -> Callable[..., tuple[ApiUser, Integration]]:
    """A dependency: (caller, integration) after the role, existence and ownership checks."""
    auth = authorize(operation)

    def load(request: Request, user: ApiUser = Depends(auth),
             ctx: AppContext = Depends(context)) -> tuple[ApiUser, Integration]:
        integration_id = request.path_params.get("integrationId", "")
        with ctx.db.session() as session:
            try:
                integration = get_integration(session, integration_id=integration_id)
            except NotFound as exc:
                raise ProblemError(404, str(exc)) from None
        check_owner(operation, user, integration)
        return user, integration

    load.__name__ = f"load_{operation}"
    return load
