"""The office's pages: one-time login, the board, the review queue, evidence downloads.

``/office/login/{token}`` shows a page with one button; its POST consumes the one-time link (15
minutes, once: a mail scanner opening the link uses nothing up), opens a session known on the
server and sets its cookie (HttpOnly, SameSite=Lax, Secure under https); ``/office/logout`` ends
that session on the server. Without a session ``/office`` only says how to get a link; every other
office path answers 404 — the same page as an unknown path.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from orchestrator.admin import links, office_sessions, overview, submissions
from orchestrator.admin.acting import TooLate, TooLong
from orchestrator.admin.decisions import AlreadyDecided
from orchestrator.admin.evidence import evidence_path
from orchestrator.admin.submissions import Actor
from orchestrator.engine.window import local_day
from orchestrator.store.models import Evidence
from orchestrator.web import render
from orchestrator.web.login_mail import send_login_link
from orchestrator.web.portal import Portal, client_of
from orchestrator.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    OfficeSession,
    binding_of,
    clean_text,
    content_disposition,
    download_name,
)
from orchestrator.web.uploads import FormError, read_form
from workflows.errors import DubanError, NotFound

DONE_NOTICES = {"approved": "已审核通过。", "returned": "已退回，理由已告知报送单位。"}
ALREADY_DECIDED = "该申请已经处理过了。"
MAX_NOTE = submissions.MAX_NOTE  # characters: a longer text is refused (never cut)


def routes(portal: Portal) -> list[Route]:
    def login_page(request: Request) -> Response:
        """Opening the link uses nothing up (mail scanners and link previews open links): a page
        with one button that logs in."""
        token = _login_token(request)
        with portal.session() as session:
            email = links.peek_office_login(portal.key, token, session, portal.now())
        if email is None or email.lower() not in portal.office_emails:
            raise HTTPException(404)
        return portal.pages.render(
            request,
            "office_login_confirm.html.j2",
            title="登录督办工作台",
            heading="督办工作台",
            email=email,
            token=token,
            csrf=lambda: portal.csrf.issue(binding_of(token)),
        )

    async def login(request: Request) -> Response:
        token = _login_token(request)
        binding = binding_of(token)
        try:
            form = await read_form(
                request,
                portal.limits,
                portal.evidence_dir,
                csrf=lambda value: portal.csrf.check(value, binding) is not None,
            )
        except FormError as exc:
            raise HTTPException(404 if exc.status == 403 else exc.status) from None
        form.cleanup()
        client, agent = client_of(request)
        found = await run_in_threadpool(_open_session, portal, token, client, agent)
        if found is None:
            raise HTTPException(404)
        email, sid = found
        response = RedirectResponse(_root(request) + "/office", 303)
        response.set_cookie(
            SESSION_COOKIE,
            portal.sessions.issue(email, sid),
            max_age=SESSION_MAX_AGE,
            path=_root(request) + "/office",
            httponly=True,
            samesite="lax",
            secure=portal.secure_cookies or request.url.scheme == "https",
        )
        return response

    def board(request: Request) -> Response:
        office = portal.office_of(request)
        if office is None:
            return _login_page(portal, request)
        return _board(
            portal, request, office, DONE_NOTICES.get(request.query_params.get("ok", "")), None, 200
        )

    async def decide(request: Request) -> Response:
        office = await run_in_threadpool(portal.office_of, request)  # (a database read)
        if office is None:
            raise HTTPException(404)
        if not portal.limiter.allow("o:" + office.sid):
            raise HTTPException(429)
        try:
            form = await read_form(request, portal.limits, portal.evidence_dir)
        except FormError as exc:
            raise HTTPException(exc.status) from None
        if portal.csrf.check(form.get(CSRF_FIELD), binding_of(office.sid)) is None:
            form.cleanup()
            raise HTTPException(403)
        form.cleanup()  # (the office's forms carry no files)
        action = request.path_params["action"]
        if action not in ("approve", "return"):
            raise HTTPException(404)
        client, agent = client_of(request)
        actor = Actor.office(office.email, client, agent)
        try:
            await run_in_threadpool(_decide, portal, action, request.path_params["submission"], actor, form)
        except NotFound:
            raise HTTPException(404) from None
        except AlreadyDecided:  # another decision went first: this one changed nothing
            return await run_in_threadpool(_board, portal, request, office, None, ALREADY_DECIDED, 409)
        except (DubanError, ValueError) as exc:
            kept = _Kept(
                request.path_params["submission"], form.get("note"), form.get("reason"), form.get("until")
            )
            return await run_in_threadpool(_board, portal, request, office, None, _message(exc), 400, kept)
        ok = "approved" if action == "approve" else "returned"
        return RedirectResponse(f"{_root(request)}/office?ok={ok}", 303)

    async def request_link(request: Request) -> Response:
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not portal.limiter.allow("p:" + binding_of(pre)):
            raise HTTPException(403 if not pre else 429)
        binding = binding_of(pre)
        try:  # (no file part is ever written: this form takes none)
            form = await read_form(
                request,
                portal.limits,
                portal.evidence_dir,
                csrf=lambda token: portal.csrf.check(token, binding) is not None,
            )
        except FormError as exc:
            raise HTTPException(exc.status) from None
        client, _ = client_of(request)
        email = clean_text(form.get("email"), 200)
        # the same answer for any address, throttled or not; the mail goes after it
        return RedirectResponse(
            _root(request) + "/office?sent=1",
            303,
            background=BackgroundTask(send_login_link, portal, email, client),
        )

    async def logout(request: Request) -> Response:
        office = await run_in_threadpool(portal.office_of, request)
        if office is not None:
            binding = binding_of(office.sid)
            try:
                await read_form(
                    request,
                    portal.limits,
                    portal.evidence_dir,
                    csrf=lambda token: portal.csrf.check(token, binding) is not None,
                )
            except FormError as exc:
                raise HTTPException(exc.status) from None
            await run_in_threadpool(_end_session, portal, office)
        response = RedirectResponse(_root(request) + "/office", 303)
        response.delete_cookie(SESSION_COOKIE, path=_root(request) + "/office")
        return response

    def download(request: Request) -> Response:
        if portal.office_of(request) is None:
            raise HTTPException(404)
        with portal.session() as session:
            row = session.get(Evidence, request.path_params["file"])
        if row is None:
            raise HTTPException(404)
        path = evidence_path(portal.evidence_dir, row.sha256)
        if not path.is_file():
            raise HTTPException(404)
        media_type = row.media_type or "application/octet-stream"
        return FileResponse(
            path,
            media_type=media_type,
            headers={
                "Content-Disposition": content_disposition(download_name(row.original_name, media_type))
            },
        )

    return [
        Route("/office", board, methods=["GET"]),
        Route("/office/login/{token}", login_page, methods=["GET"]),
        Route("/office/login/{token}", login, methods=["POST"]),
        Route("/office/login", request_link, methods=["POST"]),
        Route("/office/logout", logout, methods=["POST"]),
        Route("/office/review/{submission:int}/{action}", decide, methods=["POST"]),
        Route("/office/evidence/{file:int}", download, methods=["GET"]),
    ]


PRE_COOKIE = "duban_pre"


def _login_token(request: Request) -> str:
    token = request.path_params["token"]
    if len(token) > 512:
        raise HTTPException(404)
    return token


def _open_session(
    portal: Portal, token: str, client: str | None, agent: str | None
) -> tuple[str, str] | None:
    """Use the one-time login ``token`` and open a session on the server: (email, session id)."""
    now = portal.now()
    with portal.session() as session:
        email = links.use_office_login(portal.key, token, session, now)
        if email is None or email.lower() not in portal.office_emails:
            return None
        sid = office_sessions.open_session(session, email, now, client=client, user_agent=agent)
        session.commit()
    return email, sid


def _end_session(portal: Portal, office: OfficeSession) -> None:
    with portal.session() as session:
        office_sessions.end_session(session, office.sid, portal.now(), f"office:{office.email}")
        session.commit()


def _login_page(portal: Portal, request: Request) -> Response:
    """``/office`` without a session: a form asking for the office address; its CSRF token is
    bound to a random pre-session cookie (SameSite=Strict)."""
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(16)
    response = portal.pages.render(
        request,
        "office_login.html.j2",
        title="督办工作台",
        heading="督办工作台",
        csrf=lambda: portal.csrf.issue(binding_of(pre)),
        sent=request.query_params.get("sent") == "1",
    )
    response.set_cookie(
        PRE_COOKIE,
        pre,
        max_age=3600,
        path=_root(request) + "/office",
        httponly=True,
        samesite="strict",
        secure=portal.secure_cookies or request.url.scheme == "https",
    )
    return response


def _root(request: Request) -> str:
    return request.scope.get("root_path", "")


def _decide(portal: Portal, action: str, submission_id: int, actor: Actor, form) -> None:
    now = portal.now()
    with portal.session() as session:
        if action == "approve":
            text = form.get("until").strip()
            until = date.fromisoformat(text) if text else None
            note = clean_text(form.get("note"), portal.limits.max_field_bytes) or None
            submissions.approve(session, submission_id, actor, now, note=note, until=until, desk=portal.desk)
        else:
            reason = clean_text(form.get("reason"), portal.limits.max_field_bytes)
            submissions.return_submission(session, submission_id, actor, now, reason, desk=portal.desk)
        session.commit()


def _message(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, TooLong):
        return f"意见或理由过长：{exc.length} 字，最多 {MAX_NOTE} 字，请精简后再提交。"
    if isinstance(exc, TooLate):
        return f"延期后的日期最晚为{render.day_with_weekday(exc.latest)}。"
    if isinstance(exc, ValueError) and "isoformat" in text.lower():
        return "日期格式有误，请按“年-月-日”填写。"
    if "--reason" in text:
        return "退回须填写理由。"
    if "already" in text:
        return "该申请已经处理过了。"
    if "must be after the due date" in text:
        return "延期后的日期须晚于原截止日期。"
    if "not in review" in text:  # a completion whose obligation was finished otherwise meanwhile
        return "该事项已不在待审核状态（已办结、免除或另行处理），不能再通过此申请；可将其退回。"
    return "操作未能完成，请检查后重试。"


@dataclass(frozen=True)
class _Kept:
    """What the office typed in a form that was refused (shown again in that form)."""

    submission: int
    note: str
    reason: str
    until: str


def _board(
    portal: Portal,
    request: Request,
    office: OfficeSession,
    notice,
    error,
    status: int,
    kept: _Kept | None = None,
) -> Response:
    now = portal.now()
    section = request.query_params.get("section") or None
    unit = request.query_params.get("unit") or None
    with portal.session() as session:
        today = local_day(now, overview.display_tz(session))
        reviews = submissions.pending_reviews(session, desk=portal.desk)
        silent = submissions.unacknowledged(session, desk=portal.desk)
        everyone = submissions.board(session, today, desk=portal.desk)
        grid = submissions.board(session, today, desk=portal.desk, section=section, unit=unit)
    return portal.pages.render(
        request,
        "office.html.j2",
        status=status,
        title="督办工作台",
        heading=f"督办工作台 · {office.email}",
        reviews=reviews,
        silent=silent,
        grid=grid,
        all_units=everyone.units,
        section=section or "",
        unit=unit or "",
        csrf=lambda: portal.csrf.issue(binding_of(office.sid)),
        notice=notice,
        error=error,
        kept=kept,
        today=render.day(today),
    )
