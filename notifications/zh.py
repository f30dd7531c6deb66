"""How dates and day counts read in Chinese (zh-CN)."""

from __future__ import annotations

from datetime import date

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def day(d: date) -> str:
    """``2026年6月10日``."""
    return f"{d.year}年{d.month}月{d.day}日"


def day_with_weekday(d: date) -> str:
    """``2026年6月10日（周三）``."""
    return f"{day(d)}（{WEEKDAYS[d.weekday()]}）"


def days_left(due: date, today: date) -> str:
    """``还有3天``, ``今日到期`` or ``已逾期2天``, counted in calendar days from ``today``."""
    delta = (due - today).days
    if delta > 0:
        return f"还有{delta}天"
    if delta == 0:
        return "今日到期"
    return f"已逾期{-delta}天"


def names(items: tuple[str, ...] | list[str]) -> str:
    """Unit names joined the Chinese way: ``县司法局、县公安局``."""
    return "、".join(items)
