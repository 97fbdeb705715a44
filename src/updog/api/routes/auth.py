"""``/api/v1/auth``: sign in with a password (session cookie), sign out, who am I."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog.api.routes import API_PREFIX
from updog.api.schemas import LoginRequest, Me
from updog.http.auth import (
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Viewer,
    check_csrf,
    csrf_token,
    sign_session,
    unauthenticated,
    unsign_session,
)
from updog.http.deps import db_call, get_settings
from updog.http.openapi import problem_responses
from updog.http.problems import ProblemError
from updog.http.routing import GuardedRoute
from updog.protection.rate_limit import AccountLimiter
from updog.store import repositories as repo
from updog.store.repositories import Identity

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"], route_class=GuardedRoute)


@router.post(
    "/login",
    response_model=Me,
    operation_id="login",
    summary="Sign in with email and password; sets the session cookie",
    responses=problem_responses(body=True, public=True) | problem_responses(401, public=True),
)
async def login(request: Request, body: LoginRequest) -> Response:
    """Verify the password (Argon2id, constant time for unknown emails), open a session and
    set ``updog_session`` (HttpOnly, SameSite=Lax, Secure over HTTPS). The body returns the
    CSRF token to send as ``X-CSRF-Token`` on writes made with the cookie."""
    await _limit_account(request, body.email)
    user = await db_call(request, repo.verify_password, body.email, body.password)
    if user is None:
        raise unauthenticated("Wrong email or password.")
    secret, _session_id = await db_call(
        request, repo.create_session, user.id, absolute_lifetime=SESSION_LIFETIME
    )
    settings = get_settings(request)
    me = Me(
        user_id=str(user.id),
        email=user.email,
        org_id=str(user.org_id),
        role=user.role,
        csrf_token=csrf_token(settings.secret_key, secret),
    )
    response = JSONResponse(me.model_dump(mode="json"))
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(settings.secret_key, secret),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _limit_account(request: Request, email: str) -> None:
    """Count a sign-in attempt for ``email``; 429 past the per-account limit, 503 when the
    limit cannot be checked (see :class:`~updog.protection.rate_limit.AccountLimiter`)."""
    limiter: AccountLimiter | None = getattr(request.app.state, "account_limiter", None)
    if limiter is None:
        return
    decision = await limiter.check(email)
    if decision.unavailable:
        raise ProblemError(
            503,
            "RATE_LIMIT_UNAVAILABLE",
            "The sign-in limit cannot be checked right now; retry shortly.",
            headers={"Retry-After": str(decision.retry_after)},
        )
    if not decision.admitted:
        raise ProblemError(
            429,
            "RATE_LIMITED",
            f"Too many sign-in attempts for this account; retry after {decision.retry_after} s.",
            headers=decision.headers,
        )


@router.post(
    "/logout",
    status_code=204,
    operation_id="logout",
    summary="Sign the session out and clear the cookie",
    responses=problem_responses(403, public=True),
)
async def logout(request: Request) -> Response:
    """Revoke the session named by the cookie and clear it: 204. A live session needs its CSRF
    token (``X-CSRF-Token``, 403 ``CSRF_TOKEN_INVALID`` without it), so a cross-site page
    cannot sign a user out; a missing, forged or expired cookie is just cleared."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        secret = unsign_session(get_settings(request).secret_key, cookie)
        if secret is not None:
            identity = await db_call(request, repo.identity_for_session, secret)
            if identity is not None and identity.session_id is not None:
                check_csrf(request, secret)
                await db_call(request, repo.revoke_session, identity.session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get(
    "/me",
    response_model=Me,
    operation_id="me",
    summary="The authenticated identity",
    responses=problem_responses(),
)
async def me(identity: Identity = Viewer) -> Me:
    """Who the credential belongs to."""
    return Me(
        user_id=str(identity.user_id),
        email=identity.email,
        org_id=str(identity.org_id),
        role=identity.role,
    )
