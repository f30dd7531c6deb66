"""The portal as a Starlette application: routes, security headers, one 404 for everything unknown.

``create_app(portal)`` is all a server needs (``duban web`` runs it under uvicorn). The routes:

- ``/u/{token}`` — a unit's page and its forms (``orchestrator.web.unit``);
- ``/calendar/{feed token}.ics`` — its calendar feed, by a read-only token (the page shows the URL;
  ``/u/{token}/calendar.ics`` answers too);
- ``/office``, ``/office/login/{token}`` (a page with one button; its POST logs in),
  ``/office/logout`` — the office's board, review queue and evidence
  (``orchestrator.web.office``);
- ``/static/duban.css`` — the one stylesheet (the CSP allows no inline style or script).

``/`` is a short page saying where to go: a unit uses the link in its email, the office logs in at
``/office``. A tampered, expired or revoked token gets the very page an unknown path gets (404, no
data).
"""

from __future__ import annotations

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.web import office, unit
from orchestrator.web.portal import Portal
from orchestrator.web.render import STATIC
from orchestrator.web.security import SECURITY_HEADERS

log = structlog.get_logger("duban.web")


class SecurityHeaders:
    """Adds the security headers to every answer (pages, files, errors, static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(portal: Portal) -> Starlette:
    def not_found(request: Request, exc: Exception) -> Response:
        return portal.pages.render(request, "not_found.html.j2", status=404, title="页面不存在")

    def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (404, 405):  # (a wrong method says no more than an unknown path)
            response = not_found(request, exc)
        else:
            title, message = _ERRORS.get(exc.status_code, ("请求未能处理", "请返回上一页重试。"))
            response = portal.pages.render(
                request, "error.html.j2", status=exc.status_code, title=title, message=message, back=None
            )
        if request.method == "POST":  # the body may be unread: close rather than drain it (a 2 GB upload)
            response.headers["Connection"] = "close"
        return response

    def server_error(request: Request, exc: Exception) -> Response:
        log.error("web.error", path=_redacted(request.url.path), error=type(exc).__name__)
        return portal.pages.render(
            request,
            "error.html.j2",
            status=500,
            title="系统暂时无法处理",
            message="请稍后重试；如仍有问题，请与督办工作联系人联系。",
            back=None,
        )

    def client_gone(request: Request, exc: Exception) -> Response:
        """The client went away mid-request (a closed tab, a lost network, or cut for being too
        slow): not the portal's fault, nothing to answer. The access log's line says 499."""
        return Response(status_code=CLIENT_GONE)

    routes = [
        *unit.routes(portal),
        *office.routes(portal),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/", lambda request: portal.pages.render(request, "home.html.j2", title="督办系统")),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            HTTPException: http_error,
            404: not_found,
            ClientDisconnect: client_gone,
            Exception: server_error,
        },
    )


CLIENT_GONE = 499  # (nginx's word for "the client closed the request"; never sent)

_ERRORS = {
    400: ("请求有误", "提交的内容无法处理，请返回上一页检查后重试。"),
    403: ("页面已过期", "表单已过期或来源不明，请返回上一页、刷新后重新提交。"),
    405: ("请求有误", "请通过页面上的按钮操作。"),
    413: ("文件过大", "上传的文件超过了大小或数量限制，请压缩或分次上传。"),
    429: ("操作过于频繁", "请稍候一分钟再提交。"),
    503: (
        "系统暂时无法保存",
        "系统暂时无法保存上传的材料，这不是您填写的问题。请稍后再试；如多次出现，请与督办工作联系人联系。",
    ),
}


def _redacted(path: str) -> str:
    """A path fit for a log line: a link's token is a credential."""
    for prefix in ("/u/", "/office/login/", "/calendar/"):
        if path.startswith(prefix):
            return prefix + "…"
    return path
