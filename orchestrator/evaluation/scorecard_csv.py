"""The scorecard as CSV (``duban scorecard --format csv``): one row per unit and per section.

Names and sections are data from the units file and the plan: a cell that a spreadsheet would
read as a formula (``=HYPERLINK(…)``, ``+…``, ``-…``, ``@…``) is written as text with a leading
``'``, as the .xlsx sheets do (``notifications.sheet.text_cell``).
"""

from __future__ import annotations

import csv
import io

from notifications.sheet import text_cell
from orchestrator.evaluation.scorecard import Score, Scorecard


def _pts(value) -> str:
    return "—" if value is None else f"{value:.2f}"


CSV_COLUMNS = (
    "名次", "单位标识", "单位", "领域", "综合得分", "等次",
    "按期完成得分", "按期完成", "应完成", "完成及时得分", "逾期工作日", "指标达标得分", "指标达标", "应填报指标",
    "逾期完成", "尚未完成", "免除", "指标未达标", "指标未填报",
)  # fmt: skip


def _csv_row(rank, unit: str, name: str, section: str, score: Score) -> list:
    t = score.tally
    return [
        rank or "", text_cell(unit), text_cell(name), text_cell(section), _pts(score.total), score.band or "",
        _pts(score.on_time.points), t.on_time, t.counted, _pts(score.timeliness.points), t.late_days,
        _pts(score.indicators.points), t.met, t.indicators, t.done_late, t.not_done, t.waived, t.not_met, t.missing,
    ]  # fmt: skip


def scorecard_csv(card: Scorecard) -> str:
    """One row per unit (领域 = 全部) followed by its sections; then all units together, per section."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for u in card.units:
        writer.writerow(_csv_row(u.rank, u.unit, u.name, "全部", u.score))
        for s in u.sections:
            writer.writerow(_csv_row(None, u.unit, u.name, s.section, s.score))
    writer.writerow(_csv_row(None, "", "全部考评单位", "全部", card.overall))
    for s in card.sections:
        writer.writerow(_csv_row(None, "", "全部考评单位", s.section, s.score))
    return buffer.getvalue()
