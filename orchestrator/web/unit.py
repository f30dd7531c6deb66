"""A unit's page (``/u/{token}``), its four forms and 全部签收, and its calendar feed.

The feed's URL on the page is ``/calendar/{feed token}.ics``: a token signed for that purpose only
(``admin.links.make_feed_token``), so a calendar service it is given can read the feed and never
act for the unit; it is revoked with the unit's links. (``/u/{token}/calendar.ics`` still answers
for feeds subscribed before.)

Every POST goes the same way, in this order: the link names a unit (else 404); the link is under
its rate limit (else 429); the obligation in the path is the unit's own, in a running program
(else 404 — nothing read, nothing stored); the body is read within the upload limits (413); the
CSRF token, the first field, is bound to this link (403, checked before any file byte is
written; a form without files refuses file parts); then one core call in one transaction, with the form's id as its nonce (a double
submit stores one row), and a 303 back to the page.

A request the core refuses (a text too long, a date out of range, a finished obligation) gets the
page again (400) with the message beside the form it is about and what the unit typed kept in it;
an evidence folder that cannot be written is the server's fault: 503, an error log line naming the
folder, and an ``evidence.unwritable`` audit event (``duban status`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import structlog
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from orchestrator.admin import calendars, links, overview, storage_faults, submissions
from orchestrator.admin.acting import TooLate, TooLong, latest_due
from orchestrator.admin.evidence import EvidenceError, StorageFault
from orchestrator.admin.portal import Colour
from orchestrator.admin.submissions import Actor
from orchestrator.admin.unit_actions import acknowledge_all
from orchestrator.engine.window import local_day
from orchestrator.service.runtime import load_bundle_for
from orchestrator.store.models import Obligation, Program
from orchestrator.web import render
from orchestrator.web.portal import Portal, client_of
from orchestrator.web.security import CSRF_FIELD, binding_of, clean_text
from orchestrator.web.uploads import Form, FormError, read_form
from workflows.errors import DubanError, NotFound

log = structlog.get_logger("duban.web")

ACTIONS = ("acknowledge", "feedback", "complete", "extend")
FILE_ACTIONS = ("feedback", "complete")  # the forms that take files
DONE_NOTICES = {
    "acknowledge": "已签收。",
    "feedback": "反馈已提交。",
    "complete": "办结申请已提交，等待督办部门审核。",
    "extend": "延期申请已提交，等待督办部门审核。",
}
# characters of a note: a longer one is refused whole (never cut), and kept in the form
MAX_NOTE = submissions.MAX_NOTE


@dataclass(frozen=True)
class Failed:
    """A form the core refused: which, why (in Chinese), and what the unit typed (shown again)."""

    obligation: int
    action: str
    message: str
    note: str
    until: str


def routes(portal: Portal) -> list[Route]:
    async def page(request: Request) -> Response:
        unit = await _unit(portal, request)
        ok = request.query_params.get("ok", "")
        return await run_in_threadpool(_page, portal, request, unit, ok, None, 200)

    async def act(request: Request) -> Response:
        unit = await _unit(portal, request)
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise HTTPException(404)
        token = request.path_params["token"]
        if not portal.limiter.allow("u:" + binding_of(token)):
            raise HTTPException(429)
        obligation_id = request.path_params["obligation"]
        await run_in_threadpool(_own, portal, unit, obligation_id)
        binding = binding_of(token)
        form = await _read(portal, request, binding, files=action in FILE_ACTIONS)
        try:
            nonce = portal.csrf.check(form.get(CSRF_FIELD), binding)
            if nonce is None:
                raise HTTPException(403)
            client, agent = client_of(request)
            actor = Actor.for_unit(unit, client, agent)
            try:
                await run_in_threadpool(_do, portal, action, obligation_id, actor, form, nonce)
            except NotFound:
                raise HTTPException(404) from None
            except StorageFault as exc:
                await run_in_threadpool(_storage_fault, portal, exc, actor)
                raise HTTPException(503) from None
            except (DubanError, ValueError) as exc:
                failed = Failed(obligation_id, action, _message(exc), form.get("note"), form.get("until"))
                return await run_in_threadpool(_page, portal, request, unit, "", failed, 400)
        finally:
            form.cleanup()
        return RedirectResponse(
            f"{request.scope.get('root_path', '')}/u/{token}?ok={action}&o={obligation_id}#o{obligation_id}",
            303,
        )

    async def act_all(request: Request) -> Response:
        """全部签收: one POST acknowledges every obligation the page offers to acknowledge."""
        unit = await _unit(portal, request)
        token = request.path_params["token"]
        binding = binding_of(token)
        if not portal.limiter.allow("u:" + binding):
            raise HTTPException(429)
        form = await _read(portal, request, binding, files=False)  # (its CSRF token checked as it is read)
        form.cleanup()
        client, agent = client_of(request)
        count = await run_in_threadpool(_acknowledge_all, portal, Actor.for_unit(unit, client, agent))
        return RedirectResponse(
            f"{request.scope.get('root_path', '')}/u/{token}?ok=acknowledge-all&n={count}", 303
        )

    async def calendar(request: Request) -> Response:
        unit = await _unit(portal, request)
        return await _feed(portal, unit)

    async def feed(request: Request) -> Response:
        """The feed by its read-only token (what a calendar service is given)."""
        unit = await run_in_threadpool(portal.unit_of_feed, request.path_params["token"])
        if unit is None:
            raise HTTPException(404)
        return await _feed(portal, unit)

    async def _feed(portal: Portal, unit: str) -> Response:
        data = await run_in_threadpool(_calendar, portal, unit)
        return Response(
            data,
            media_type="text/calendar; charset=utf-8",
            headers={"Content-Disposition": 'inline; filename="duban.ics"'},
        )

    return [
        Route("/u/{token}", page, methods=["GET"]),
        Route("/u/{token}/calendar.ics", calendar, methods=["GET"]),
        Route("/calendar/{token}.ics", feed, methods=["GET"]),
        Route("/u/{token}/acknowledge-all", act_all, methods=["POST"]),
        Route("/u/{token}/o/{obligation:int}/{action}", act, methods=["POST"]),
    ]


async def _unit(portal: Portal, request: Request) -> str:
    unit = await run_in_threadpool(portal.unit_of, request.path_params["token"])
    if unit is None:
        raise HTTPException(404)
    return unit


def _own(portal: Portal, unit: str, obligation_id: int) -> None:
    with portal.session() as session:
        try:
            submissions.own_obligation(session, unit, obligation_id)
        except NotFound:
            raise HTTPException(404) from None


async def _read(portal: Portal, request: Request, binding: str, *, files: bool) -> Form:
    """The body, its CSRF token checked as soon as it is read (before any file part); file parts
    only for the forms that take files (反馈, 办结申请)."""
    try:
        return await read_form(
            request,
            portal.limits,
            portal.evidence_dir,
            csrf=lambda token: portal.csrf.check(token, binding) is not None,
            files=files,
        )
    except StorageFault as exc:  # (only after the CSRF token passed: a file part had begun)
        await run_in_threadpool(_storage_fault, portal, exc, None)
        raise HTTPException(503) from None
    except (FormError, EvidenceError) as exc:
        raise HTTPException(getattr(exc, "status", 413)) from None


def _storage_fault(portal: Portal, fault: StorageFault, actor: Actor | None) -> None:
    """The server's fault, said where the administrator looks: the log and ``duban status``."""
    log.error("evidence.unwritable", folder=str(fault.folder), error=fault.error)
    try:
        with portal.session() as session:
            storage_faults.record_fault(session, fault, portal.now(), actor.name if actor else "web")
            session.commit()
    except Exception as exc:  # (the database may be the next thing that fails: the log line stays)
        log.error("evidence.unwritable_not_recorded", error=type(exc).__name__)


def _acknowledge_all(portal: Portal, actor: Actor) -> int:
    with portal.session() as session:
        stored = acknowledge_all(session, actor, portal.now())
        session.commit()
    return len(stored)


def _do(portal: Portal, action: str, obligation_id: int, actor: Actor, form: Form, nonce: str) -> None:
    now = portal.now()
    note = clean_text(form.get("note"), portal.limits.max_field_bytes)  # (the core refuses past MAX_NOTE)
    with portal.session() as session:
        if action == "acknowledge":
            submissions.acknowledge(session, obligation_id, actor, now, nonce=nonce)
        elif action == "feedback":
            files = form.store("files")
            submissions.feedback(session, obligation_id, actor, now, note, files, nonce=nonce)
        elif action == "complete":
            files = form.store("files")
            submissions.submit_completion(
                session, obligation_id, actor, now, note, files, nonce=nonce, desk=portal.desk
            )
        else:
            until = _day(form.get("until"))
            submissions.request_extension(
                session, obligation_id, actor, now, until, note, nonce=nonce, desk=portal.desk
            )
        session.commit()


class BadDate(DubanError):
    """A date field that is not YYYY-MM-DD."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadDate("请填写新的截止日期（年-月-日）") from None


_MESSAGES = {
    "has passed": "已过截止日期，不能再申请延期；请尽快办理并提交办结申请。",
    "must be after the due date": "新的截止日期须晚于原截止日期。",
    "already waiting for review": "已有一项延期申请在等待审核。",
    "required": "请填写说明，或上传佐证材料。",
    "not an accepted file type": "文件类型不在允许范围内（允许：pdf、ofd、doc、docx、xls、xlsx、jpg、png、zip）。",
    "the file is empty": "上传的文件是空文件。",
    "nothing to submit": "该事项当前不能提交办结申请。",
    "cannot be extended": "该事项当前不能申请延期。",
    "no acknowledgement": "该事项已办结或已免除，无需再签收。",
    "no feedback": "该事项已办结或已免除，不能再反馈进展。",
}


def _message(exc: Exception) -> str:
    """A zh-CN line for the unit (the core's English message is never shown raw)."""
    text = str(exc)
    if isinstance(exc, BadDate):
        return text
    if isinstance(exc, TooLong):
        return f"说明文字过长：{exc.length} 字，最多 {MAX_NOTE} 字。请精简后再提交，已填写的内容保留在下面。"
    if isinstance(exc, TooLate):
        return f"新的截止日期最晚为{render.day_with_weekday(exc.latest)}。"
    for needle, message in _MESSAGES.items():
        if needle in text:
            return message
    return "提交未能完成，请检查填写的内容后重试。"


def _page(portal: Portal, request: Request, unit: str, ok: str, failed: Failed | None, status: int):
    now = portal.now()
    token = request.path_params["token"]
    binding = binding_of(token)
    with portal.session() as session:
        today = local_day(now, overview.display_tz(session))
        items = submissions.unit_obligations(session, unit, today, desk=portal.desk)
        feed_url = links.feed_link(portal.key, portal.settings.web.base_url, session, unit, now=now)
        latest = {o.id: latest_due(session, session.get(Obligation, o.id), portal.desk) for o in items}
    notice = _notice(ok, request.query_params.get("o", ""), items, request.query_params.get("n", ""))
    to_acknowledge = sum(1 for o in items if o.can_acknowledge)
    counts = [
        (colour, colour.label, n) for colour in Colour if (n := sum(1 for o in items if o.colour == colour))
    ]
    return portal.pages.render(
        request,
        "unit.html.j2",
        status=status,
        title=portal.unit_name(unit),
        heading="督办事项办理",
        unit_name=portal.unit_name(unit),
        items=items,
        counts=counts,
        before_start=sum(1 for o in items if o.before_start),
        token=token,
        feed_url=feed_url,
        csrf=lambda: portal.csrf.issue(binding),
        notice=notice,
        error=failed.message if failed else None,
        failed=failed,
        to_acknowledge=to_acknowledge,
        latest=latest,
        today=render.day(today),
        today_date=today,
        max_mb=f"{portal.limits.max_file_bytes / (1024 * 1024):g}",
        max_files=portal.limits.max_files,
    )


def _notice(ok: str, obligation: str, items, count: str) -> str | None:
    """What the redirect after a POST says — only while it is still true (a reload after the office
    decided does not repeat "waiting for review")."""
    if ok == "acknowledge-all":
        return f"已签收 {count} 项。" if count.isdigit() and int(count) else "没有需要签收的事项。"
    if ok in ("complete", "extend"):
        wanted = "completion" if ok == "complete" else "extension"
        if not any(str(o.id) == obligation and o.pending == wanted for o in items):
            return None
    return DONE_NOTICES.get(ok)


def _calendar(portal: Portal, unit: str) -> bytes:
    """The unit's feed: every open obligation of the programs whose plans load (others left out)."""

    def bundle_of(program: Program):
        return portal.desk.bundles.get(program.workflow) or load_bundle_for(portal.settings, program.workflow)

    with portal.session() as session:
        loadable = {}
        for program in session.exec(select(Program)):
            try:
                loadable[program.id] = bundle_of(program)
            except DubanError:
                continue
        wanted = [o for o in calendars.open_obligations(session, unit) if o.program_id in loadable]
        mail = portal.settings.mail
        data = calendars.calendar_of(
            session,
            wanted,
            lambda program: loadable[program.id],
            domain=mail.domain,
            now=portal.now(),
            kind=mail.calendar,
            allow_empty=True,
        )
    assert data is not None
    return data
