"""SIGHUP: config, definitions, units and registers loaded anew — all of it, or none of it.

``load_new`` returns the new ``Runtime`` or, when any file is broken, ``None`` after logging every
problem (``reload.problem`` lines as ``FILE:LINE: message``): the daemon keeps the runtime it has.
Any exception while loading — not only the known errors — keeps the old runtime: a reload never
stops the daemon.
A new ``database.url`` is ignored until a restart (the daemon cannot move its lock and leadership).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import structlog

from orchestrator.service.config import Settings, load_settings
from orchestrator.service.runtime import Runtime, load_runtime, require_link_key
from workflows.errors import DefinitionError, DubanError

log = structlog.get_logger("duban.daemon")


async def load_new(
    old: Settings, on_assumed: Callable[[int, str], None]
) -> tuple[Runtime | None, str | None]:
    """``(runtime, None)`` when every file loaded; ``(None, 用户可读的原因)`` when the old one stays."""
    path = old.path
    try:
        settings = await asyncio.to_thread(load_settings, path, required=path is not None)
        await asyncio.to_thread(require_link_key, settings)
        runtime = await asyncio.to_thread(load_runtime, settings, on_assumed)
    except DefinitionError as exc:
        for problem in exc.problems:
            log.error("reload.problem", problem=str(problem))
        log.error("reload.failed", problems=len(exc.problems), kept="the previous configuration")
        return None, f"重新加载失败（{len(exc.problems)} 个问题，见日志），沿用原配置"
    except DubanError as exc:
        log.error("reload.failed", error=str(exc), kept="the previous configuration")
        return None, "重新加载失败（见日志），沿用原配置"
    except Exception as exc:  # whatever a new file does, the running daemon goes on
        log.exception(
            "reload.failed", error=f"{type(exc).__name__}: {exc}"[:500], kept="the previous configuration"
        )
        return None, "重新加载失败（见日志），沿用原配置"
    if settings.database.url != old.database.url:
        log.warning("reload.database_ignored", hint="a new database.url takes effect on restart")
        settings = settings.model_copy(update={"database": old.database})
        runtime = replace(runtime, settings=settings)
    return runtime, None
