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


def days_late(due: date, today: date) -> str:
    """``逾期7天`` (calendar days after ``due``), for a row under a heading that already says 逾期."""
    late = (today - due).days
    return f"逾期{late}天" if late > 0 else "今日到期"


def names(items: tuple[str, ...] | list[str]) -> str:
    """Unit names joined the Chinese way: ``县司法局、县公安局``."""
    return "、".join(items)


def period(key: str, freq: str | None = None) -> str:
    """A dated occurrence key as people say it: ``2026-08-31`` → ``2026年8月`` (a monthly or yearly
    duty's period), ``2026年8月31日`` for weekly or daily duties; anything else as it is."""
    try:
        d = date.fromisoformat(key)
    except ValueError:
        return key
    if freq in ("WEEKLY", "DAILY"):
        return day(d)
    return f"{d.year}年{d.month}月"


def unit_contact(name: str | None, phone: str | None, emails: tuple[str, ...] | list[str] = ()) -> str | None:
    """``王敏 0571-8888 1234`` (the unit's contact person and phone), else its addresses, else None."""
    parts = [p for p in (name, phone) if p]
    if parts:
        return " ".join(parts)
    return "、".join(emails) or None
