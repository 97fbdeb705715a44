"""The web UI (SPEC §5.4): server-rendered pages over the same store and engines as the API.

Pages: sign in / out, fund list, the setup wizard (basics → fees and waterfall → stages →
construction → review and publish), the forecast page and the simulation pages with CSV and
JSON downloads.

The wizard saves as the user types: each post of a step stores its valid fields as a new
draft revision and keeps the entries it could not store as the user's pending edits (table
``wizard_pending_edits``), shown again with their errors on the step and listed on the
review, so nothing typed is lost and every message says what was and was not saved. Draft
revisions and published versions are counted apart (publishing the first time makes version
1, however many saves came before).

Security: the session is the API's (``updog_session``, HttpOnly, SameSite=Lax; see
:mod:`updog.http.auth`); every form carries the session's CSRF token in ``csrf_token`` (the
value the API expects in ``X-CSRF-Token``, which the scripts send), and the sign-in form a
token bound to a short-lived pre-session cookie. Pages are plain HTML: every script and
stylesheet is a static file of the app (``/static/ui``), so the strict CSP of
:mod:`updog.protection.headers` holds without inline code. Readers get 404 for another
organisation's fund, as in the API.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from updog import ENGINE_VERSION
from updog.http.auth import (
    ROLE_RANK,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    csrf_token,
    sign_session,
    unsign_session,
)
from updog.http.deps import db_call, fault_plan, get_settings, in_thread
from updog.model.validation import validate_publish
from updog.protection.rate_limit import AccountLimiter
from updog.service import forecasts, funds, simulations
from updog.service.errors import Conflict, Invalid, NotFound, PreconditionFailed
from updog.service.simulations import SimulationRequest
from updog.store import repositories as repo
from updog.store.repositories import FundRecord, Identity, SimulationRecord
from updog.web import charts, forms

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Where the pages' stylesheet and script are served (beside /static/swagger-ui of /docs).
STATIC_PATH = "/static/ui"
#: Pre-session cookie of the sign-in form (its CSRF token is an HMAC of it).
SIGNIN_COOKIE = "updog_signin"
#: Largest form body read, bytes (the app's body limit applies first).
MAX_FORM_BYTES = 512_000
MAX_FORM_FIELDS = 4_000
PERCENTILES = ("p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99")
METRICS = (
    ("tvpi", "Net TVPI", "multiple"),
    ("dpi", "DPI", "multiple"),
    ("net_irr", "Net IRR", "percent"),
    ("gross_multiple", "Gross multiple", "multiple"),
    ("carry", "Carried interest", "money"),
)

_env = Environment(
    loader=PackageLoader("updog.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def static_files() -> StaticFiles:
    """The app's stylesheet and scripts, mounted at :data:`STATIC_PATH`."""
    return StaticFiles(directory=STATIC_DIR)


# --------------------------------------------------------------------------- formatting


def fmt_money(value: Any) -> str:
    if value is None:
        return "—"
    sign = "−" if value < 0 else ""
    return f"{sign}${abs(value):,.0f}"


def fmt_multiple(value: Any) -> str:
    return "—" if value is None else f"{value:.2f}x"


def fmt_percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value * 100:.{digits}f} %"
    return text.replace("-", "−")


def fmt_number(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def fmt_metric(kind: str, value: Any) -> str:
    if kind == "money":
        return fmt_money(value)
    if kind == "percent":
        return fmt_percent(value)
    return fmt_multiple(value)


def fmt_date(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_env.filters.update(
    money=fmt_money,
    multiple=fmt_multiple,
    percent=fmt_percent,
    number=fmt_number,
    when=fmt_date,
)
_env.globals.update(
    fmt_metric=fmt_metric,
    field_id=lambda key: "f-" + key.replace(".", "-"),
    describe=forms.describe_key,
)


# --------------------------------------------------------------------------- plumbing


class Page:
    """Who is asking: identity, session secret (for the CSRF token) or nobody."""

    def __init__(self, request: Request, identity: Identity | None, secret: str | None):
        self.request = request
        self.identity = identity
        self.secret = secret

    @property
    def csrf(self) -> str:
        if self.secret is None:
            return ""
        return csrf_token(get_settings(self.request).secret_key, self.secret)

    @property
    def can_write(self) -> bool:
        return self.identity is not None and ROLE_RANK.get(self.identity.role, -1) >= 1


async def _page(request: Request) -> Page:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return Page(request, None, None)
    secret = unsign_session(get_settings(request).secret_key, cookie)
    if secret is None:
        return Page(request, None, None)
    identity = await db_call(request, repo.identity_for_session, secret)
    return Page(request, identity, secret if identity is not None else None)


def render(page: Page, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(
        me=page.identity,
        csrf=page.csrf,
        can_write=page.can_write,
        path=page.request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/sign-in?next={quote(target, safe='/?=&')}", status_code=303)


def _error_page(page: Page, status: int, title: str, detail: str) -> HTMLResponse:
    return render(page, "error.html", status=status, title=title, detail=detail)


def _not_found(page: Page, what: str = "fund") -> HTMLResponse:
    return _error_page(page, 404, "Not found", f"There is no such {what} in your organisation.")


async def read_form(request: Request) -> dict[str, str] | None:
    """The url-encoded form of a POST (last value wins); None when it is not one."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        return None
    return {k: v[:10_000] for k, v in pairs}


def _csrf_ok(page: Page, form: dict[str, str]) -> bool:
    sent = form.get("csrf_token") or page.request.headers.get("x-csrf-token", "")
    return bool(page.csrf) and hmac.compare_digest(sent, page.csrf)


async def _writer(request: Request) -> tuple[Page, dict[str, str]] | Response:
    """A signed-in analyst's POST with a valid CSRF token, or the response refusing it."""
    page = await _page(request)
    if page.identity is None:
        return _sign_in_redirect(request)
    form = await read_form(request)
    if form is None:
        return _error_page(page, 415, "Unsupported form", "Send the page's form as it is.")
    if not _csrf_ok(page, form):
        return _error_page(
            page, 403, "Form expired", "This form is out of date. Reload the page and try again."
        )
    if not page.can_write:
        return _error_page(
            page, 403, "Not allowed", "Your role can read funds but not change them."
        )
    return page, form


def _parse_uuid(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _safe_next(raw: str | None) -> str:
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/funds"


# --------------------------------------------------------------------------- sign in / out


def _signin_token(secret_key: str, nonce: str) -> str:
    return hmac.new(secret_key.encode(), b"signin:" + nonce.encode(), hashlib.sha256).hexdigest()


@router.get("/")
async def home(request: Request) -> Response:
    page = await _page(request)
    return RedirectResponse("/funds" if page.identity else "/sign-in", status_code=303)


def _sign_in_form(
    request: Request, *, email: str = "", error: str = "", status: int = 200
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    token = _signin_token(get_settings(request).secret_key, nonce)
    response = render(
        Page(request, None, None),
        "sign_in.html",
        status=status,
        title="Sign in",
        email=email,
        error=error,
        signin_token=token,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=3600,
        path="/sign-in",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    page = await _page(request)
    if page.identity is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return _sign_in_form(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request) or {}
    email = form.get("email", "").strip()[:320]
    settings = get_settings(request)
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    expected = _signin_token(settings.secret_key, nonce) if nonce else ""
    if not expected or not hmac.compare_digest(form.get("csrf_token", ""), expected):
        return _sign_in_form(
            request, email=email, error="The sign-in form expired. Try again.", status=403
        )
    password = form.get("password", "")
    if not email or not password:
        return _sign_in_form(
            request, email=email, error="Enter your email and password.", status=422
        )
    limiter: AccountLimiter | None = getattr(request.app.state, "account_limiter", None)
    if limiter is not None:
        decision = await limiter.check(email)
        if not decision.admitted:
            message = (
                "Signing in is unavailable for a moment; try again shortly."
                if decision.unavailable
                else "Too many sign-in attempts for this account; try again in "
                f"{decision.retry_after} seconds."
            )
            response = _sign_in_form(
                request, email=email, error=message, status=503 if decision.unavailable else 429
            )
            response.headers["Retry-After"] = str(decision.retry_after)
            return response
    user = await db_call(request, repo.verify_password, email, password[:1024])
    if user is None:
        return _sign_in_form(request, email=email, error="Wrong email or password.", status=401)
    secret, _ = await db_call(
        request, repo.create_session, user.id, absolute_lifetime=SESSION_LIFETIME
    )
    signed_in = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    signed_in.set_cookie(
        SESSION_COOKIE,
        sign_session(settings.secret_key, secret),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    signed_in.delete_cookie(SIGNIN_COOKIE, path="/sign-in")
    return signed_in


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    page = await _page(request)
    form = await read_form(request) or {}
    if page.identity is not None and _csrf_ok(page, form):
        if page.identity.session_id is not None:
            await db_call(request, repo.revoke_session, page.identity.session_id)
    elif page.identity is not None:
        return _error_page(page, 403, "Form expired", "Reload the page and sign out again.")
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


# --------------------------------------------------------------------------- fund list


def _list_rows(
    conn: Any, org_id: uuid.UUID, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    page = repo.list_funds(conn, org_id, 50, cursor)
    rows = []
    for fund in page.items:
        shown = forms.view_spec(fund.spec)
        tvpi = None
        if fund.published_version is not None:
            version = repo.get_spec(conn, org_id, fund.id, "published")
            if version is not None:
                stored = repo.get_forecast(conn, org_id, version.id, ENGINE_VERSION)
                if stored is not None:
                    tvpi = stored.result.get("summary", {}).get("tvpi")
        rows.append(
            {
                "fund": fund,
                "vintage": shown.get("vintage_year"),
                "size": shown.get("fund_size"),
                "tvpi": tvpi,
            }
        )
    return rows, page.next_cursor


@router.get("/funds")
async def fund_list(request: Request) -> Response:
    page = await _page(request)
    if page.identity is None:
        return _sign_in_redirect(request)
    cursor = request.query_params.get("cursor") or None
    try:
        rows, next_cursor = await db_call(request, _list_rows, page.identity.org_id, cursor)
    except repo.InvalidCursor:
        return _error_page(page, 404, "Not found", "That page of the list does not exist.")
    return render(page, "funds.html", title="Funds", rows=rows, next_cursor=next_cursor)


@router.post("/funds")
async def create_fund(request: Request) -> Response:
    checked = await _writer(request)
    if isinstance(checked, Response):
        return checked
    page, _form = checked
    assert page.identity is not None
    spec = forms.new_fund_spec(datetime.now(UTC).date())
    fund = await db_call(request, funds.create, page.identity, spec)
    return RedirectResponse(f"/funds/{fund.id}/setup/basics", status_code=303)


async def _fund(page: Page, raw_id: str) -> FundRecord | None:
    fid = _parse_uuid(raw_id)
    if fid is None or page.identity is None:
        return None
    try:
        return await db_call(page.request, funds.get, page.identity, fid)
    except NotFound:
        return None


async def _signed_in_fund(request: Request, fund_id: str) -> tuple[Page, FundRecord] | Response:
    """The page context and the fund of a GET page, or the response that ends the request
    (sign-in redirect when signed out, 404 page for a missing or another org's fund)."""
    page = await _page(request)
    if page.identity is None:
        return _sign_in_redirect(request)
    fund = await _fund(page, fund_id)
    if fund is None:
        return _not_found(page)
    return page, fund


@router.get("/funds/{fund_id}")
async def fund_home(request: Request, fund_id: str) -> Response:
    context = await _signed_in_fund(request, fund_id)
    if isinstance(context, Response):
        return context
    _, fund = context
    where = "forecast" if fund.published_version is not None else "setup/basics"
    return RedirectResponse(f"/funds/{fund.id}/{where}", status_code=303)


# --------------------------------------------------------------------------- wizard


def _steps_nav(fund: FundRecord, current: str) -> list[dict[str, Any]]:
    return [
        {
            "slug": slug,
            "title": forms.STEP_TITLES[slug],
            "href": f"/funds/{fund.id}/setup/{slug}",
            "current": slug == current,
            "number": i + 1,
        }
        for i, slug in enumerate(forms.STEP_SLUGS)
    ]


def _render_step(
    page: Page,
    fund: FundRecord,
    step: forms.Step,
    state: forms.FormState,
    *,
    status: int = 200,
    saved: str = "",
    held: list[str] | None = None,
) -> HTMLResponse:
    """The page of a wizard step: ``state`` is the form with its messages, ``saved`` what
    the last save did, ``held`` the keys of entries shown as typed but not saved."""
    index = forms.STEP_SLUGS.index(step.slug)
    return render(
        page,
        "wizard_step.html",
        status=status,
        title=f"{step.title} — {fund.name}",
        fund=fund,
        step=step,
        state=state,
        steps=_steps_nav(fund, step.slug),
        previous=forms.STEP_SLUGS[index - 1] if index > 0 else None,
        saved=saved,
        held=held or [],
    )


@router.get("/funds/{fund_id}/setup")
async def wizard_start(request: Request, fund_id: str) -> Response:
    return RedirectResponse(f"/funds/{fund_id}/setup/basics", status_code=303)


@router.get("/funds/{fund_id}/setup/{slug}")
async def wizard_step(request: Request, fund_id: str, slug: str) -> Response:
    context = await _signed_in_fund(request, fund_id)
    if isinstance(context, Response):
        return context
    page, fund = context
    if slug == forms.REVIEW:
        return await _review(page, fund)
    step = forms.get_step(slug)
    if step is None:
        return _not_found(page, "setup step")
    assert page.identity is not None
    pending = await db_call(
        request, repo.list_pending_edits, page.identity.org_id, fund.id, page.identity.user_id
    )
    check = bool(request.query_params.get("check"))
    if step.slug in pending:  # what this user typed and the draft did not take
        edits = pending[step.slug]
        form = forms.with_pending(step, fund.spec, edits.held, edits.texts)
        _candidate, _errors, state = forms.check_form(step, form, fund.spec, complete=check)
        return _render_step(page, fund, step, state, held=edits.held)
    state = forms.state_from_spec(step, fund.spec)
    if check:
        forms.place_issues(step, state, forms.step_issues(step, fund.spec, complete=True))
    return _render_step(page, fund, step, state)


def _store_step(
    conn: Any,
    identity: Identity,
    fund: FundRecord,
    slug: str,
    spec: dict[str, Any],
    held: list[str],
    texts: dict[str, str],
) -> FundRecord:
    """One transaction: the draft's next revision (when ``spec`` changes it) and the user's
    pending edits of the step (``held`` keys, typed ``texts``; none forgets them)."""
    saved = fund
    if spec != fund.spec:
        saved = funds.save_draft(conn, identity, fund.id, spec, if_match=[fund.etag])
    repo.set_pending_edits(conn, identity.org_id, fund.id, identity.user_id, slug, held, texts)
    return saved


@dataclass(frozen=True)
class StepSave:
    """What posting a wizard step did: the fund after it, whether the draft changed, the
    form as typed with its messages, and the keys of the entries not saved."""

    fund: FundRecord
    changed: bool
    state: forms.FormState
    held: list[str]


async def _save_step(
    page: Page, fund: FundRecord, step: forms.Step, form: dict[str, str], *, complete: bool
) -> StepSave:
    """Save what is valid of a posted step and keep the rest as the user's pending edits.

    The form is read against the latest draft; when another tab saved meanwhile it is read
    again against that one (three tries), so this step's fields win and the others stay."""
    identity = page.identity
    assert identity is not None
    tried = fund.draft_revision
    for _ in range(3):
        tried = fund.draft_revision
        candidate, parse_errors, state = forms.check_form(step, form, fund.spec, complete=complete)
        kept = forms.savable(fund.spec, candidate, parse_errors)
        if kept is None:  # not even the valid fields make a draft: nothing is saved
            kept = fund.spec
        held = forms.held_back(candidate, kept, parse_errors, form)
        try:
            saved = await db_call(
                page.request,
                _store_step,
                identity,
                fund,
                step.slug,
                kept,
                held,
                forms.pending_texts(form, held),
            )
            return StepSave(saved, saved.draft_revision != fund.draft_revision, state, held)
        except PreconditionFailed:
            fund = await db_call(page.request, funds.get, identity, fund.id)
    # Three concurrent saves in a row beat this one: give up (412 via the problem handlers).
    raise PreconditionFailed(
        f"The draft changed three times while revision {tried} was saved; reload the page.",
        etag=fund.etag,
    )


@router.post("/funds/{fund_id}/setup/{slug}")
async def wizard_post(request: Request, fund_id: str, slug: str) -> Response:
    checked = await _writer(request)
    if isinstance(checked, Response):
        return checked
    page, form = checked
    identity = page.identity
    assert identity is not None
    fund = await _fund(page, fund_id)
    step = forms.get_step(slug)
    if fund is None or step is None:
        return _not_found(page)
    action = form.get("_action", "continue")
    if action == "discard":  # forget what this user typed and the draft did not take
        await db_call(
            request,
            repo.set_pending_edits,
            identity.org_id,
            fund.id,
            identity.user_id,
            step.slug,
            [],
            {},
        )
        return RedirectResponse(f"/funds/{fund.id}/setup/{step.slug}", status_code=303)
    if action.startswith(("add:", "remove:")):
        form = forms.restructure(step, form, action, fund.spec)
    complete = action in ("continue", "check")
    done = await _save_step(page, fund, step, form, complete=complete)
    message = forms.save_message(step, done.held, changed=done.changed)
    if action == "autosave":
        return JSONResponse(
            {
                "saved": done.changed,
                "draft_revision": done.fund.draft_revision,
                "not_saved": [forms.describe_key(step, key) for key in done.held],
                "message": message,
            },
            headers={"Cache-Control": "no-store"},
        )
    index = forms.STEP_SLUGS.index(step.slug)
    if action == "back" and index > 0:
        return RedirectResponse(
            f"/funds/{fund.id}/setup/{forms.STEP_SLUGS[index - 1]}", status_code=303
        )
    if action == "continue" and not done.state.errors and not done.held:
        return RedirectResponse(
            f"/funds/{fund.id}/setup/{forms.STEP_SLUGS[index + 1]}", status_code=303
        )
    return _render_step(
        page,
        done.fund,
        step,
        done.state,
        status=422 if (done.state.errors or done.held) and complete else 200,
        saved=message,
        held=done.held,
    )


def _review_sections(spec: dict[str, Any]) -> list[dict[str, Any]]:
    s = forms.view_spec(spec)
    w, r, c = s["waterfall"], s["recycling"], s["construction"]
    tiers = "; ".join(
        f"{fmt_percent(t.get('rate'), 2)} on {str(t.get('basis', '')).replace('_', ' ')}, "
        f"years {t.get('start_year')}–{t.get('end_year') or 'end'}"
        for t in s["fees"].get("tiers") or []
    )
    return [
        {
            "slug": "basics",
            "title": "Basics",
            "rows": [
                ("Fund name", s.get("name") or "—"),
                ("Fund size", fmt_money(s.get("fund_size"))),
                ("Vintage year", s.get("vintage_year") or "—"),
                ("Model inputs as of", s.get("model_inputs_as_of") or "—"),
                ("First close", s.get("first_close") or "1 January of the vintage year"),
                ("Fund life", f"{s.get('fund_life_years')} years"),
                ("Investment period", f"{s.get('investment_period_years')} years"),
                ("Evergreen", "Yes" if s.get("evergreen") else "No"),
            ],
        },
        {
            "slug": "fees",
            "title": "Fees and waterfall",
            "rows": [
                ("Management fees", tiers or "None"),
                ("Expenses", f"{len(s.get('expenses') or [])} item(s)"),
                ("Waterfall", str(w.get("type", "")).capitalize()),
                ("Carried interest", fmt_percent(w.get("carry"))),
                ("Hurdle", fmt_percent(w.get("hurdle"))),
                ("GP catch-up", fmt_percent(w.get("catch_up"))),
                ("GP commitment", fmt_percent(w.get("gp_commit_ratio"))),
                (
                    "Recycling",
                    f"Up to {fmt_percent(r.get('cap_ratio'))} of commitments for "
                    f"{r.get('period_years')} years"
                    if r.get("enabled")
                    else "Off",
                ),
            ],
        },
        {
            "slug": "stages",
            "title": "Stages",
            "rows": [
                (
                    str(st.get("name")),
                    f"round {fmt_money(st.get('round_size'))} at {fmt_money(st.get('post_money'))}"
                    f" post; graduate {fmt_percent(st.get('graduation_rate'))}, exit "
                    f"{fmt_percent(st.get('exit_rate'))}",
                )
                for st in s.get("stages") or []
                if isinstance(st, dict)
            ],
        },
        {
            "slug": "construction",
            "title": "Construction",
            "rows": [
                *(
                    (
                        f"Entry at {a.get('stage')}",
                        f"{fmt_percent(a.get('share'))} of initial capital, checks of "
                        f"{fmt_money(a.get('initial_check'))}, follow-on "
                        f"{str(a.get('follow_on', '')).replace('_', ' ')}",
                    )
                    for a in c.get("allocations") or []
                    if isinstance(a, dict)
                ),
                ("Reserve ratio", fmt_percent(c.get("reserve_ratio"))),
                ("Deployment pacing", str(c.get("deployment_curve", "")).capitalize()),
            ],
        },
    ]


def _issue_links(fund: FundRecord, issues: list[Any]) -> list[dict[str, str]]:
    out = []
    for issue in issues:
        slug = forms.step_for_path(issue["path"])
        step = forms.get_step(slug)
        message = issue["message"]
        href = f"/funds/{fund.id}/setup/{slug}"
        key: str | None = None
        if step is not None:
            state = forms.state_from_spec(step, fund.spec)
            key = forms.field_for_issue(step, state, issue["path"])
            node = forms.find_node(step, key) if key else None
            message = forms.issue_message(issue, node)
            href += "?check=1" + (f"#f-{key.replace('.', '-')}" if key else "")
        out.append(
            {
                "step": forms.STEP_TITLES[slug],
                "field": forms.describe_key(step, key or "")
                if step is not None
                else forms.pointer_to_key(issue["path"]).replace(".", " › ") or "fund",
                "message": message,
                "href": href,
            }
        )
    return out


def _unsaved_steps(fund: FundRecord, pending: dict[str, repo.PendingEdits]) -> list[dict[str, str]]:
    """Per wizard step with pending edits: its title, the fields not saved, and its link."""
    return [
        {
            "step": step.title,
            "fields": ", ".join(forms.describe_key(step, key) for key in pending[step.slug].held),
            "href": f"/funds/{fund.id}/setup/{step.slug}",
        }
        for step in forms.STEPS
        if step.slug in pending
    ]


async def _review(page: Page, fund: FundRecord, *, status: int = 200, note: str = "") -> Response:
    assert page.identity is not None
    spec, errors, warnings = await run_in_threadpool(validate_publish, fund.spec)
    pending = await db_call(
        page.request, repo.list_pending_edits, page.identity.org_id, fund.id, page.identity.user_id
    )
    return render(
        page,
        "wizard_review.html",
        status=status,
        title=f"Review — {fund.name}",
        fund=fund,
        steps=_steps_nav(fund, forms.REVIEW),
        sections=_review_sections(fund.spec),
        errors=_issue_links(fund, errors),
        warnings=_issue_links(fund, warnings),
        unsaved=_unsaved_steps(fund, pending),
        publishable=spec is not None,
        already=fund.published_revision == fund.draft_revision,
        next_version=(fund.published_version or 0) + 1,
        note=note,
    )


@router.post("/funds/{fund_id}/publish")
async def publish(request: Request, fund_id: str) -> Response:
    checked = await _writer(request)
    if isinstance(checked, Response):
        return checked
    page, form = checked
    assert page.identity is not None
    fund = await _fund(page, fund_id)
    if fund is None:
        return _not_found(page)
    reviewed = form.get("revision", "")
    expected = [repo.etag_for(fund.id, int(reviewed))] if reviewed.isdigit() else None
    try:
        await db_call(request, funds.publish, page.identity, fund.id, if_match=expected)
    except PreconditionFailed:
        return await _review(
            page, fund, status=409, note="The draft changed since you reviewed it; check it again."
        )
    except Invalid:
        return await _review(page, fund, status=422)
    except Conflict:
        return await _review(
            page, fund, status=409, note="The draft changed while publishing; check it again."
        )
    return RedirectResponse(f"/funds/{fund.id}/forecast", status_code=303)


# --------------------------------------------------------------------------- forecast


async def _forecast(
    page: Page, fund: FundRecord, which: funds.Which
) -> forecasts.ForecastOutcome | str:
    """The stored forecast of the fund's version, or why there is none."""
    assert page.identity is not None
    try:
        return await in_thread(page.request, forecasts.forecast, page.identity, fund.id, which)
    except Conflict:
        return "unpublished"
    except NotFound:
        return "missing"
    except Invalid:
        return "invalid"


@router.get("/funds/{fund_id}/forecast")
async def forecast_page(request: Request, fund_id: str) -> Response:
    context = await _signed_in_fund(request, fund_id)
    if isinstance(context, Response):
        return context
    page, fund = context
    which: funds.Which = "draft" if request.query_params.get("version") == "draft" else "published"
    found = await _forecast(page, fund, which)
    if isinstance(found, str):
        return render(
            page,
            "forecast.html",
            status=409 if found != "missing" else 404,
            title=f"Forecast — {fund.name}",
            fund=fund,
            missing=found,
            which=which,
        )
    stored, fv = found.stored, found.version
    result = stored.result
    images = await run_in_threadpool(charts.forecast_charts, str(stored.id), result)
    return render(
        page,
        "forecast.html",
        title=f"Forecast — {fund.name}",
        fund=fund,
        which=which,
        missing=None,
        version=fv,
        stored=stored,
        s=result["summary"],
        quarters=result["quarters"],
        charts=images,
        outcomes=charts.company_outcomes(result["summary"]),
    )


# --------------------------------------------------------------------------- simulations


async def _simulations_page(
    page: Page,
    fund: FundRecord,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    assert page.identity is not None
    recent = await db_call(
        page.request, repo.list_simulations, page.identity.org_id, fund.id, limit=10
    )
    return render(
        page,
        "simulations.html",
        status=status,
        title=f"Simulations — {fund.name}",
        fund=fund,
        recent=recent,
        values=values or {"runs": "10,000", "seed": ""},
        errors=errors or {},
        sync_limit=get_settings(page.request).sync_runs_limit,
    )


@router.get("/funds/{fund_id}/simulations")
async def simulations_page(request: Request, fund_id: str) -> Response:
    context = await _signed_in_fund(request, fund_id)
    if isinstance(context, Response):
        return context
    page, fund = context
    return await _simulations_page(page, fund)


def _run_request(form: dict[str, str]) -> tuple[SimulationRequest | None, dict[str, str]]:
    errors: dict[str, str] = {}
    runs_text = form.get("runs", "").replace(",", "").replace(" ", "").strip()
    seed_text = form.get("seed", "").replace(",", "").strip()
    data: dict[str, Any] = {}
    if not runs_text.isdigit():
        errors["runs"] = "Enter the number of runs as a whole number, such as 10,000."
    else:
        data["runs"] = int(runs_text)
    if seed_text:
        if not seed_text.isdigit():
            errors["seed"] = "Enter the seed as a whole number, or leave it empty."
        else:
            data["seed"] = int(seed_text)
    if errors:
        return None, errors
    try:
        return SimulationRequest.model_validate(data), {}
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "runs"
            limits = {"runs": "between 100 and 5,000,000", "seed": "between 0 and 2^63 − 1"}
            errors[name] = f"Enter a number {limits.get(name, '')}."
        return None, errors


@router.post("/funds/{fund_id}/simulations")
async def run_simulation(request: Request, fund_id: str) -> Response:

    checked = await _writer(request)
    if isinstance(checked, Response):
        return checked
    page, form = checked
    identity = page.identity
    assert identity is not None
    fund = await _fund(page, fund_id)
    if fund is None:
        return _not_found(page)
    values = {"runs": form.get("runs", ""), "seed": form.get("seed", "")}
    params, errors = _run_request(form)
    if params is None:
        return await _simulations_page(page, fund, values=values, errors=errors, status=422)
    settings = get_settings(request)
    try:
        planned = await db_call(
            request,
            simulations.plan,
            identity,
            fund.id,
            "published",
            params,
            sync_runs_limit=settings.sync_runs_limit,
        )
    except (Conflict, Invalid) as exc:
        why = (
            "Publish the fund before simulating it."
            if exc.code == "FUND_NOT_PUBLISHED"
            else "The published version does not validate with this engine."
        )
        return await _simulations_page(page, fund, values=values, status=409, errors={"": why})
    if planned.background:
        sim = await db_call(
            request, simulations.submit, identity, planned, max_attempts=settings.job_max_attempts
        )
        return RedirectResponse(f"/simulations/{sim.id}", status_code=303)
    record, result = await in_thread(
        request, simulations.run_now, identity, planned, faults=fault_plan(request)
    )
    done = await db_call(request, simulations.complete, identity, record, result)
    return RedirectResponse(f"/simulations/{done.id}", status_code=303)


async def _simulation(page: Page, raw_id: str) -> tuple[SimulationRecord, FundRecord] | None:
    sid = _parse_uuid(raw_id)
    if sid is None or page.identity is None:
        return None
    try:
        sim = await db_call(page.request, simulations.get, page.identity, sid)
        fund = await db_call(page.request, funds.get, page.identity, sim.fund_id)
    except NotFound:
        return None
    return sim, fund


@router.get("/simulations/{simulation_id}")
async def simulation_page(request: Request, simulation_id: str) -> Response:
    page = await _page(request)
    if page.identity is None:
        return _sign_in_redirect(request)
    found = await _simulation(page, simulation_id)
    if found is None:
        return _not_found(page, "simulation")
    sim, fund = found
    images = []
    if sim.status == "succeeded" and sim.result:
        images = await run_in_threadpool(charts.simulation_charts, str(sim.id), sim.result)
    return render(
        page,
        "simulation.html",
        title=f"Simulation — {fund.name}",
        fund=fund,
        sim=sim,
        r=sim.result,
        charts=images,
        metrics=METRICS,
        percentiles=PERCENTILES,
    )


def _download_name(fund: FundRecord, sim: SimulationRecord, ext: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in fund.name.lower()).strip("-") or "fund"
    return f"{slug[:40]}-simulation-{sim.seed}-{sim.runs}.{ext}"


def simulation_csv(sim: SimulationRecord) -> str:
    """The result as CSV: one row per metric (mean, sd, percentiles and their standard
    errors), then the probabilities and the NAV fan chart per quarter."""
    result = sim.result or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "# simulation",
            str(sim.id),
            "runs",
            sim.runs,
            "seed",
            sim.seed,
            "engine",
            sim.engine_version,
            "spec_hash",
            sim.spec_hash,
        ]
    )
    header = ["metric", "count", "mean", "sd", *PERCENTILES, "se_mean"]
    header += [f"se_{p}" for p in PERCENTILES]
    writer.writerow(header)
    for name, _label, _kind in METRICS:
        m = (result.get("metrics") or {}).get(name)
        if not m:
            continue
        se = m.get("se") or {}
        writer.writerow(
            [
                name,
                m.get("count"),
                m.get("mean"),
                m.get("sd"),
                *(m.get(p) for p in PERCENTILES),
                se.get("mean"),
                *(se.get(p) for p in PERCENTILES),
            ]
        )
    writer.writerow([])
    writer.writerow(["probability", "value"])
    for name, value in (result.get("probabilities") or {}).items():
        writer.writerow([name, value])
    fan = result.get("fan_chart") or {}
    if fan.get("quarters"):
        writer.writerow([])
        writer.writerow(["quarter", "nav_p10", "nav_p50", "nav_p90"])
        nav = fan.get("nav") or {}
        for i, q in enumerate(fan["quarters"]):
            writer.writerow(
                [q, *((nav.get(p) or [None] * (i + 1))[i] for p in ("p10", "p50", "p90"))]
            )
    return out.getvalue()


@router.get("/simulations/{simulation_id}/download/{fmt}")
async def simulation_download(request: Request, simulation_id: str, fmt: str) -> Response:
    page = await _page(request)
    if page.identity is None:
        return _sign_in_redirect(request)
    found = await _simulation(page, simulation_id)
    if found is None or fmt not in ("csv", "json"):
        return _not_found(page, "download")
    sim, fund = found
    if sim.status != "succeeded" or not sim.result:
        return _error_page(page, 409, "Not ready", "The simulation has no result yet.")
    name = _download_name(fund, sim, fmt)
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "csv":
        return Response(simulation_csv(sim), media_type="text/csv; charset=utf-8", headers=headers)
    body = {
        "id": str(sim.id),
        "fund_id": str(sim.fund_id),
        "runs": sim.runs,
        "seed": sim.seed,
        "provenance": {
            "engine_version": sim.engine_version,
            "spec_version": (sim.params or {}).get("version"),
            "spec_hash": sim.spec_hash,
            "seed": sim.seed,
        },
        "result": sim.result,
    }
    return Response(
        json.dumps(body, indent=2, allow_nan=False),
        media_type="application/json",
        headers=headers,
    )
