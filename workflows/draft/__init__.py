"""``duban draft``: a plan's own text (实施方案 .txt or .docx) → a definition draft for a person to correct.

- ``source``: reading the file, within bounds, into numbered lines (a .docx paragraph or table row
  is a line).
- ``dates``: the date phrases plans use (「6月10日前」「2022年10月底前」「每年12月底前」「每季度」
  「每两年」「有效期届满前6个月」, ranges and phases) → due dates, windows, rules.
- ``names``: the unit phrases (「牵头单位：」「责任单位：」「（……牵头，……按职责分工负责）」「由……负责」,
  subjects such as 「各乡镇人民政府」) and their matching to the roles of a units file.
- ``outline``: numbered headings and items → sections, phases, tasks, and the duties carved out of
  an item's dated clauses.
- ``render``: the draft as TOML, every entry citing its source line (``# 原文第N行：…``) and
  ``# 待核：…`` where the reading is unsure.

It never invents: a date or a unit that is not in the text is not in the draft. What it cannot
read is left as a placeholder that ``duban validate`` refuses (「待定」), never a silent guess.
"""

from __future__ import annotations

from workflows.draft.model import Draft, make_draft

__all__ = ["Draft", "make_draft"]
