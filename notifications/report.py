"""The scorecard (综合考评评分表) as one self-contained HTML file, and its summary for an email body.

Pure: both take the scorecard's JSON document (``duban scorecard --format json``, the shape in
README.md ("The formula")) and return a ``str``. The HTML has inline CSS and inline SVG only: no script,
no font, image or style sheet from the network. It reads on a screen and prints on A4. Every
value from the data is escaped (the template is autoescaped); every figure is computed here, so
the template only lays things out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from notifications import zh
from notifications.render import make_environment

# Best band first; the last band is always red.
BAND_INK = ("#2e7d32", "#1565c0", "#b26a00", "#6a1b9a", "#c62828")
BAND_TINT = ("#e3f1e4", "#e1edf9", "#fdf0d9", "#f1e4f5", "#fbe3e3")
NONE_INK, NONE_TINT = "#78909c", "#eceff1"
PHASE_FILL = ("#c9d8e8", "#d6e4cf", "#ecdcc4", "#dcd3e8", "#d0e4e4")
TIMELINE_WIDTH = 720
LANE = 26
AXIS_TOP = 26


@dataclass(frozen=True)
class Band:
    name: str
    min: float
    ink: str
    tint: str

    @property
    def label(self) -> str:
        """``90`` or ``85.5``: the band's minimum score as shown."""
        return number(self.min)


@dataclass(frozen=True)
class Lane:
    """One phase bar of the timeline, in SVG user units."""

    name: str
    dates: str
    x: float
    y: float
    width: float
    fill: str
    label_x: float
    label_anchor: str  # start | end
    label_inside: bool


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    late: bool
    title: str


@dataclass(frozen=True)
class Timeline:
    height: float
    width: float
    months: tuple[tuple[float, str], ...]  # (x, label)
    lanes: tuple[Lane, ...]
    dots: tuple[Dot, ...]
    dots_y: float
    today_x: float | None
    today_label: str
    today_anchor: str


# -- small formatting helpers ---------------------------------------------------------------------


def points(value: float | None) -> str:
    """``97.50`` or ``—``."""
    return "—" if value is None else f"{value:.2f}"


def percent(numerator: int, denominator: int) -> str:
    """``91.67%`` (two decimals, half up is done by the caller's data; here plain formatting)."""
    if not denominator:
        return "—"
    return f"{numerator * 100 / denominator:.2f}".rstrip("0").rstrip(".") + "%"


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def short_day(d: date) -> str:
    """``12月21日``."""
    return f"{d.month}月{d.day}日"


def text_width(text: str, size: float) -> float:
    """An estimate of rendered width: CJK characters are square, others about half."""
    return sum(size if ord(ch) > 0x2E7F else size * 0.56 for ch in text)


def indicator_value(fact: Mapping[str, Any]) -> str:
    """``12/12（100%）``, ``95.5%``, ``3`` or ``未填报``."""
    if fact["value"] is None:
        return "未填报"
    shown = number(fact["value"]) + ("%" if fact["percent"] else "")
    return f"{fact['count']}/{fact['of']}（{shown}）" if fact["of"] is not None else shown


# -- bands ----------------------------------------------------------------------------------------


def bands(data: Mapping[str, Any]) -> tuple[Band, ...]:
    """The bands, best first, each with its colours (the last band is always red)."""
    rows = sorted(data["bands"], key=lambda b: -b["min"])
    out = []
    for i, row in enumerate(rows):
        slot = len(BAND_INK) - 1 if i == len(rows) - 1 else min(i, len(BAND_INK) - 2)
        out.append(Band(row["name"], row["min"], BAND_INK[slot], BAND_TINT[slot]))
    return tuple(out)


def band_colours(name: str | None, all_bands: Sequence[Band]) -> tuple[str, str]:
    found = next((b for b in all_bands if b.name == name), None)
    return (found.ink, found.tint) if found else (NONE_INK, NONE_TINT)


# -- the timeline ---------------------------------------------------------------------------------


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def timeline(data: Mapping[str, Any]) -> Timeline:
    """Phases as bars over the months they span, deadlines as dots, the evaluation day as a line."""
    as_of = date.fromisoformat(data["as_of"])
    phases = [
        (p["name"], date.fromisoformat(p["start"]), date.fromisoformat(p["end"])) for p in data["phases"]
    ]
    deadlines = [(date.fromisoformat(d["due"]), d["count"], d["not_done"]) for d in data["deadlines"]]
    year = data["year"]
    days = [as_of, *(s for _, s, _ in phases), *(e for _, _, e in phases)]
    first = _month_start(min(days) if phases else date(year, 1, 1))
    last = _next_month(max(days) if phases else date(year, 12, 1))
    deadlines = [d for d in deadlines if first <= d[0] < last]
    left, right = 8.0, 8.0
    span = (last - first).days
    usable = TIMELINE_WIDTH - left - right

    def x(d: date) -> float:
        return round(left + (d - first).days / span * usable, 1)

    months = []
    cursor = first
    while cursor < last:
        months.append((x(cursor), f"{cursor.month}月"))
        cursor = _next_month(cursor)
    lanes = []
    for i, (name, start, end) in enumerate(phases):
        x0, x1 = x(start), x(end + timedelta(days=1))
        dates = f"{short_day(start)}—{short_day(end)}"
        label = f"{name} {dates}"
        need = text_width(label, 11) + 10
        inside = x1 - x0 >= need
        if inside:
            lx, anchor = x0 + 5, "start"
        elif TIMELINE_WIDTH - right - x1 >= need:
            lx, anchor = x1 + 5, "start"
        else:
            lx, anchor = x0 - 5, "end"
        y = AXIS_TOP + 8 + i * LANE
        fill = PHASE_FILL[i % len(PHASE_FILL)]
        lanes.append(Lane(name, dates, x0, y, round(x1 - x0, 1), fill, lx, anchor, inside))
    dots_y = AXIS_TOP + 8 + len(phases) * LANE + 14
    biggest = max((n for _, n, _ in deadlines), default=1)
    dots = tuple(
        Dot(
            x(d) + 0.5 * usable / span,
            dots_y,
            round(2.5 + 5.5 * (n / biggest) ** 0.5, 1),
            late > 0,
            f"{zh.day(d)}截止{n}项" + (f"，{late}项未按期完成" if late else ""),
        )
        for d, n, late in deadlines
    )
    today_x = x(as_of) + 0.5 * usable / span if first <= as_of < last else None
    label = f"考评日 {short_day(as_of)}"
    anchor = (
        "end" if today_x is not None and today_x > TIMELINE_WIDTH - text_width(label, 11) - 12 else "start"
    )
    return Timeline(
        height=dots_y + 22,
        width=TIMELINE_WIDTH,
        months=tuple(months),
        lanes=tuple(lanes),
        dots=dots,
        dots_y=dots_y,
        today_x=today_x,
        today_label=label,
        today_anchor=anchor,
    )


# -- the rows of the tables -----------------------------------------------------------------------


def _component(part: Mapping[str, Any]) -> str:
    return points(part["points"])


def unit_rows(data: Mapping[str, Any], all_bands: Sequence[Band]) -> list[dict]:
    rows = []
    for unit in data["units"]:
        tally = unit["tally"]
        ink, tint = band_colours(unit["band"], all_bands)
        rows.append(
            {
                "rank": unit["rank"] or "—",
                "unit": unit["unit"],
                "name": unit["name"],
                "score": points(unit["score"]),
                "bar": 0 if unit["score"] is None else round(unit["score"], 2),
                "band": unit["band"] or "不参与排名",
                "ink": ink,
                "tint": tint,
                "on_time": _component(unit["on_time"]),
                "on_time_count": f"{tally['on_time']}/{tally['counted']}" if tally["counted"] else "—",
                "timeliness": _component(unit["timeliness"]),
                "late_days": tally["late_days"],
                "indicators": _component(unit["indicators"]),
                "indicator_count": f"{tally['met']}/{tally['indicators']}" if tally["indicators"] else "—",
                "done_late": tally["done_late"],
                "not_done": tally["not_done"],
                "waived": tally["waived"],
                "missing_indicators": tally["missing"],
            }
        )
    return rows


def section_rows(data: Mapping[str, Any], all_bands: Sequence[Band]) -> list[dict]:
    rows = []
    for section in data["sections"]:
        tally = section["tally"]
        ink, tint = band_colours(section["band"], all_bands)
        rows.append(
            {
                "section": section["section"],
                "counted": tally["counted"],
                "on_time": tally["on_time"],
                "done_late": tally["done_late"],
                "not_done": tally["not_done"],
                "waived": tally["waived"],
                "rate": percent(tally["on_time"], tally["counted"]),
                "indicators": f"{tally['met']}/{tally['indicators']}" if tally["indicators"] else "—",
                "score": points(section["score"]),
                "ink": ink,
                "tint": tint,
            }
        )
    return rows


def heatmap(data: Mapping[str, Any], all_bands: Sequence[Band]) -> dict:
    """Units × sections: each cell the unit's score in that section, tinted by its band."""
    sections = [s["section"] for s in data["sections"]]
    rows = []
    for unit in data["units"]:
        by_section = {s["section"]: s for s in unit["sections"]}
        cells = []
        for name in sections:
            cell = by_section.get(name)
            if cell is None or cell["score"] is None:
                cells.append({"text": "—", "ink": NONE_INK, "tint": "#ffffff", "title": "无考评事项"})
                continue
            ink, tint = band_colours(cell["band"], all_bands)
            tally = cell["tally"]
            title = (
                f"按时完成{tally['on_time']}/{tally['counted']}，指标达标{tally['met']}/{tally['indicators']}"
            )
            cells.append({"text": points(cell["score"]), "ink": ink, "tint": tint, "title": title})
        rows.append({"name": unit["name"], "rank": unit["rank"] or "—", "cells": cells})
    return {"sections": sections, "rows": rows}


def indicator_rows(data: Mapping[str, Any]) -> list[dict]:
    rows = []
    for ind in data["indicators"]:
        total = len(ind["values"]) or 1
        shortfalls = [
            {"name": v["unit_name"], "value": indicator_value(v), "status": v["status"]}
            for v in ind["values"]
            if v["status"] != "met"
        ]
        rows.append(
            {
                "name": ind["name"],
                "task": ind["task"],
                "target": ind["target"].replace(">=", "≥").replace("<=", "≤").replace("==", "="),
                "met": ind["met"],
                "not_met": ind["not_met"],
                "missing": ind["missing"],
                "reporters": len(ind["values"]),
                "met_w": round(ind["met"] / total * 100, 2),
                "not_met_w": round(ind["not_met"] / total * 100, 2),
                "missing_w": round(ind["missing"] / total * 100, 2),
                "not_met_list": [s for s in shortfalls if s["status"] == "not_met"],
                "missing_list": [s for s in shortfalls if s["status"] == "missing"],
            }
        )
    return rows


def _item_row(item: Mapping[str, Any]) -> dict:
    title = item["title"] + (f"（{item['occurrence']}）" if item["occurrence"] else "")
    due = _day(item["due"])
    done = _day(item["done_on"])
    return {
        "ref": item["ref"] or "",
        "task": item["task"],
        "title": title,
        "section": item["section"],
        "due": zh.day(due) if due else "—",
        "done": zh.day(done) if done else "",
        "late_days": item["late_days"],
        "reason": item["reason"] or "",
        "indicator": item["indicator"],
    }


def unit_details(data: Mapping[str, Any], all_bands: Sequence[Band]) -> tuple[list[dict], list[str]]:
    """Per unit with anything to show: its late, missing and waived items; and the names of the rest."""
    details, clean = [], []
    for unit in data["units"]:
        if not (unit["late"] or unit["missing"] or unit["waived"]):
            clean.append(unit["name"])
            continue
        ink, tint = band_colours(unit["band"], all_bands)
        missing = [_item_row(i) for i in unit["missing"]]
        details.append(
            {
                "name": unit["name"],
                "rank": unit["rank"] or "—",
                "score": points(unit["score"]),
                "band": unit["band"] or "不参与排名",
                "ink": ink,
                "tint": tint,
                "late": [_item_row(i) for i in unit["late"]],
                "not_done": [m for m in missing if not m["indicator"]],
                "unreported": [m for m in missing if m["indicator"]],
                "waived": [_item_row(i) for i in unit["waived"]],
            }
        )
    return details, clean


def headline(data: Mapping[str, Any], all_bands: Sequence[Band]) -> dict:
    overall = data["overall"]["tally"]
    scored = [u["score"] for u in data["units"] if u["score"] is not None]
    counts = [
        {
            "name": b.name,
            "count": sum(1 for u in data["units"] if u["band"] == b.name),
            "ink": b.ink,
            "tint": b.tint,
        }
        for b in all_bands
    ]
    return {
        "units": len(data["units"]),
        "average": points(sum(scored) / len(scored)) if scored else "—",
        "on_time_rate": percent(overall["on_time"], overall["counted"]),
        "on_time": overall["on_time"],
        "counted": overall["counted"],
        "not_done": overall["not_done"],
        "done_late": overall["done_late"],
        "indicator_rate": percent(overall["met"], overall["indicators"]),
        "met": overall["met"],
        "indicators": overall["indicators"],
        "missing": overall["missing"],
        "bands": counts,
    }


def build_view(data: Mapping[str, Any]) -> dict:
    """Everything the template shows, computed once."""
    all_bands = bands(data)
    as_of = date.fromisoformat(data["as_of"])
    details, clean = unit_details(data, all_bands)
    weights = data["weights"]
    return {
        "title": data["title"],
        "year": data["year"],
        "as_of": zh.day_with_weekday(as_of),
        "as_of_short": short_day(as_of),
        "weights": {k: number(v) for k, v in weights.items()},
        "full_penalty": data["late_days_full_penalty"],
        "bands": all_bands,
        "headline": headline(data, all_bands),
        "timeline": timeline(data),
        "units": unit_rows(data, all_bands),
        "sections": section_rows(data, all_bands),
        "heatmap": heatmap(data, all_bands),
        "indicators": indicator_rows(data),
        "details": details,
        "clean": clean,
        "extensions": extension_rows(data),
    }


def extension_rows(data: Mapping[str, Any]) -> list[dict]:
    """The approved extensions (延期), by unit: the due date before and after, and the unit's reason."""
    names = {u["unit"]: u["name"] for u in data["units"]}
    return [
        {
            "unit": names.get(e["unit"], e["unit"]),
            "task": e["task"],
            "title": e["title"] + (f"（{e['occurrence']}）" if e["occurrence"] else ""),
            "before": zh.day(date.fromisoformat(e["before"])),
            "after": zh.day(date.fromisoformat(e["after"])),
            "reason": e["reason"] or "",
        }
        for e in data.get("extensions", ())
    ]


def render_scorecard_html(data: Mapping[str, Any]) -> str:
    """The scorecard as one self-contained HTML document (zh-CN, A4 print styles)."""
    template = make_environment().get_template("scorecard.html.j2")
    return template.render(view=build_view(data))


def render_summary(data: Mapping[str, Any]) -> str:
    """A few lines for the body of the scorecard email: bands, totals, the ranking."""
    all_bands = bands(data)
    head = headline(data, all_bands)
    as_of = date.fromisoformat(data["as_of"])
    overall = data["overall"]["tally"]
    band_text = "，".join(f"{b['name']}{b['count']}个" for b in head["bands"])
    lines = [
        f"截至{zh.day_with_weekday(as_of)}，{data['title']}{data['year']}年度综合考评共评{head['units']}个单位："
        f"{band_text}；平均得分{head['average']}分。",
        f"考评单位应完成事项{overall['counted']}项，按期完成{overall['on_time']}项（{head['on_time_rate']}），"
        f"逾期完成{overall['done_late']}项，尚未完成{overall['not_done']}项，免除{overall['waived']}项；"
        f"指标{overall['indicators']}项，达标{overall['met']}项，未达标{overall['not_met']}项，"
        f"未填报{overall['missing']}项。",
        "",
        "排名：",
    ]
    for unit in data["units"]:
        rank = unit["rank"] or "—"
        if unit["score"] is None:
            lines.append(f"{rank}. {unit['name']}：无可考评事项")
        else:
            lines.append(f"{rank}. {unit['name']} {points(unit['score'])}分（{unit['band']}）")
    weights = data["weights"]
    lines += [
        "",
        f"计分办法：按期完成率{number(weights['on_time'])}分，完成及时程度{number(weights['timeliness'])}分，"
        f"指标达标{number(weights['indicators'])}分。",
        "各单位得分明细及逾期、缺报、免除事项见附件评分表（HTML文件，可用浏览器打开，可直接打印为A4）。",
    ]
    return "\n".join(lines)
