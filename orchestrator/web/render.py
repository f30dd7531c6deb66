"""The portal's Jinja2 environment: autoescape on for every template (``.html.j2`` included)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
SHANGHAI = ZoneInfo("Asia/Shanghai")


WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def day(value: date) -> str:
    """``2026年6月10日``, as the emails write it."""
    return f"{value.year}年{value.month}月{value.day}日"


def day_with_weekday(value: date | str | None) -> str:
    """``2026年6月10日（周三）``."""
    if value is None or value == "":
        return ""
    value = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day(value)}（{WEEKDAYS[value.weekday()]}）"


def local_time(value: datetime | None, tz: ZoneInfo = SHANGHAI) -> str:
    """``6月10日 09:30`` in the plan's zone (stored times are UTC)."""
    if value is None:
        return ""
    moment = value.astimezone(tz)
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"


def days_left(due: date, today: date) -> str:
    """``今日到期`` / ``还有 3 天`` / ``已逾期 2 天``."""
    delta = (due - today).days
    if delta == 0:
        return "今日到期"
    return f"还有 {delta} 天" if delta > 0 else f"已逾期 {-delta} 天"


def next_day(day: date) -> str:
    return (day + timedelta(days=1)).isoformat()


def file_size(size: int | None) -> str:
    if size is None:
        return ""
    if size < 1024:
        return f"{size} 字节"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2", "xml"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        day=day_with_weekday, when=local_time, size=file_size, left=days_left, next_day=next_day
    )
    return env


class Pages:
    """Renders a template into an ``HTMLResponse``."""

    def __init__(self) -> None:
        self.env = make_environment()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("root", request.scope.get("root_path", ""))
        context.setdefault("heading", "")
        context.setdefault("today", "")
        context.setdefault("notice", None)
        context.setdefault("error", None)
        context.setdefault("footer", "")
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)
