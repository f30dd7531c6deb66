"""``duban web``: the portal under uvicorn, built from the frozen settings.

uvicorn's own access log is off: a unit's link is a credential and would be written to the
journal with every request. The portal logs one structlog line per request with the link's token
cut out. ``proxy_headers`` takes the client address from ``X-Forwarded-For`` only when the
request comes from 127.0.0.1 (the nginx in front). The HTTP protocol is uvicorn's h11 one with
deadlines for headers and bodies and a cap on connections per client (``orchestrator.web.edge``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.admin.submissions import Desk
from orchestrator.engine.clock import Clock, clock_from_environment
from orchestrator.service.config import Settings
from orchestrator.service.runtime import load_configured_bundles, send_policy
from orchestrator.store.db import open_database
from orchestrator.web.app import _redacted, create_app
from orchestrator.web.edge import EdgeLimits, edge_protocol
from orchestrator.web.portal import Portal
from orchestrator.web.uploads import UploadLimits

log = structlog.get_logger("duban.web")
TRUSTED_PROXIES = "127.0.0.1"


def make_portal(settings: Settings, clock: Clock | None = None) -> Portal:
    """Everything the portal needs, from config (the key read now; never logged or shown)."""
    web = settings.web
    bundles = load_configured_bundles(settings)
    by_id = {bundle.definition.workflow.id: bundle for bundle in bundles.values()}
    return Portal(
        settings=settings,
        engine=open_database(settings.database.url),
        clock=clock or clock_from_environment(os.environ),
        key=web.secret().encode("utf-8"),
        evidence_dir=Path(web.evidence_dir),
        limits=UploadLimits(max_file_bytes=web.max_bytes, max_files=web.max_files),
        link_max_age=float(web.link_seconds),
        office_emails=frozenset(e.lower() for e in web.office_emails),
        secure_cookies=web.base_url.startswith("https://"),
        desk=Desk(bundles=by_id, policy=send_policy(settings, bundles), extension_years=web.extension_years),
    )


class AccessLog:
    """One line per request: method, path (tokens cut out), status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info(
                "web.request",
                method=scope.get("method"),
                path=_redacted(scope.get("path", "")),
                status=status["code"],
                ms=round((time.perf_counter() - started) * 1000, 1),
            )


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def edge_limits(portal: Portal) -> EdgeLimits:
    web = portal.settings.web
    return EdgeLimits(
        header_timeout=web.header_timeout,
        body_timeout=web.body_timeout,
        min_body_rate=web.min_upload_rate,
        per_client=web.max_connections_per_client,
        trusted=frozenset(TRUSTED_PROXIES.split(",")),
    )


def uvicorn_config(portal: Portal, host: str, port: int, **overrides) -> uvicorn.Config:
    """The portal's uvicorn settings (``overrides`` for tests: a longer keep-alive on a loaded machine)."""
    options = dict(
        host=host,
        port=port,
        http=edge_protocol(edge_limits(portal)),
        loop="orchestrator.web.accept:EdgeLoop",
        access_log=False,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=TRUSTED_PROXIES,
        server_header=False,
        date_header=True,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
    )
    return uvicorn.Config(AccessLog(create_app(portal)), **(options | overrides))


def serve(portal: Portal, listen: str) -> None:
    """Run the portal until SIGINT/SIGTERM (uvicorn's own handlers)."""
    host, port = split_listen(listen)
    config = uvicorn_config(portal, host, port)
    log.info("web.listening", listen=f"{host}:{port}", base_url=portal.settings.web.base_url)
    uvicorn.Server(config).run()
