"""A draft as TOML text: a definition file with the source of every entry in comments.

Each entry starts with ``# 原文第N行：…`` (the line it was made from); a key read from another
line, or from one phrase of it, says so on its own line (``# 原文第N行：「6月10日前」``), and each
reading a person must check is a ``# 待核：…`` line above the key. Strings are TOML basic strings
(JSON's escapes are TOML's); comments are one line, with control characters removed.
"""

from __future__ import annotations

import json
import re

from workflows.draft.dates import TBD, When, window_between
from workflows.draft.model import Draft, DraftPhase, Entry, Ref
from workflows.schema import MAX_LINE, MAX_TEXT

_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_SLIP = re.compile(
    rf"[(](?={_HAN})|(?<={_HAN})[)]|(?<={_HAN}|[）》”])[,:;](?!\d)|(?<!\d)[,:;](?={_HAN}|[（《“])"
)
FULL_WIDTH = {",": "，", "(": "（", ")": "）", ":": "：", ";": "；"}
CITE = 48  # characters of a source line quoted in a comment


def text(value: str) -> str:
    """A TOML basic string."""
    return json.dumps(value, ensure_ascii=False)


def chinese(value: str) -> str:
    """Half-width ``,():;`` between Chinese characters as full-width (「会议,通过」 → 「会议，通过」)."""
    return _SLIP.sub(lambda m: FULL_WIDTH[m.group()], value)


def comment(value: str) -> str:
    return " ".join(value.split()).replace("\x7f", "")


def cite(number: int, line_text: str) -> str:
    shown = line_text if len(line_text) <= CITE else line_text[:CITE] + "…"
    return f"# 原文第{number}行：{comment(chinese(shown))}"


def phrase(number: int, words: str) -> str:
    return f"# 原文第{number}行：「{comment(chinese(words))}」"


class _Out:
    def __init__(self):
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def check(self, note: str) -> None:
        self.lines.append(f"# 待核：{comment(note)}")


def _header(draft: Draft, source: str, units: str | None) -> list[str]:
    matched = (
        f"单位按单位文件 {units} 匹配为角色（role:X）或单位标识；" if units else "未给单位文件（--units）："
    )
    return [
        f"# duban draft：由「{comment(source)}」生成的定义草稿，供人工核对、修改后使用。",
        "# - 每一项都注明出处（# 原文第N行：…）。「# 待核：…」处请核对原文，改好后删去该行注释。",
        f"# - 原文没有的日期和单位，草稿中也没有：写着「{TBD}」的地方和照原文保留的单位名称，",
        "#   duban validate 会报错，须按实际填写。引文中汉字间的半角标点已改为全角。",
        f"# - {matched}照原文保留的名称请改为 role:X 或单位标识。",
        "# - 改好后检查：duban validate 本文件 单位文件",
        "",
    ]


def _workflow(draft: Draft, out: _Out) -> None:
    out.add("[workflow]")
    out.check('方案的标识：改为本方案的英文标识（字母、数字、-），如 "rule-of-law-pilot"')
    out.add('id = "draft"')
    if draft.title_line is not None:
        out.add(phrase(draft.title_line.number, draft.title or ""))
        out.add(f"title = {text(chinese(draft.title or '')[:MAX_LINE])}")
    else:
        out.check("原文中没有找到方案的标题，请填写")
        out.add(f"title = {text(TBD)}")
    out.add('timezone = "Asia/Shanghai"', 'calendar = "cn-workdays"', "")


def _phase(phase: DraftPhase, out: _Out) -> None:
    when = phase.when
    out.add("[[phases]]", cite(phase.line.number, phase.line.text), f'id = "{phase.id}"')
    out.add(f"name = {text(chinese(phase.name)[:MAX_LINE])}")
    out.add(phrase(phase.line.number, when.phrase))
    if when.unsure:
        out.check(when.unsure)
    out.add(f'start = "{when.begin}"', f'end = "{when.due}"')
    if phase.description:
        out.add(f"description = {text(chinese(phase.description)[:MAX_TEXT])}")
    out.add("")


def _refs(key: str, refs: list[Ref], out: _Out) -> None:
    for number in dict.fromkeys(r.line for r in refs):
        phrases = "；".join(dict.fromkeys(r.phrase for r in refs if r.line == number))
        out.add(phrase(number, phrases))
    for ref in refs:
        if ref.unsure:
            out.check(ref.unsure)
    out.add(f"{key} = [{', '.join(text(r.written) for r in refs)}]")


def _when(entry: Entry, out: _Out) -> bool:
    """The entry's date keys; False when it has none (an anchored entry needs no responsible units)."""
    when: When | None = entry.when
    if when is None:
        if entry.phase is not None:
            if entry.phase_assumed:
                out.check(
                    f"原文未给本项的期限：按第{entry.phase.line.number}行「{entry.phase.name}」办理，"
                    "截止于阶段结束日；如另有期限，改为 due"
                )
            else:
                out.add(f"# 属第{entry.phase.line.number}行「{comment(entry.phase.name)}」")
            out.add(f'phase = "{entry.phase.id}"')
        else:
            out.check("原文未给本项的期限：请写出 due（MM-DD）、rrule 或 phase")
        return True
    assert entry.when_line is not None
    out.add(phrase(entry.when_line.number, when.phrase))
    if when.unsure:
        out.check(when.unsure)
    if when.year is not None:
        out.check(
            f"原文带年份（{when.year}年）：duban 的日期不带年份，年份由 duban start --year {when.year} 给出"
        )
    anchored = when.kind == "expiry"
    if anchored:
        out.add(f'anchor = "register:{TBD}.{TBD}"')
    elif when.kind == "rrule":
        out.add(f"rrule = {text(when.rrule or '')}")
    else:
        out.add(f'due = "{when.due}"')
    if when.kind == "span" and when.begin is not None and when.begin < when.due:
        out.add(f'window = "{window_between(when.begin, when.due)}"')
    elif when.window:
        out.add(f'window = "{when.window}"')
    if when.roll == "backward":
        out.add('roll = "backward"   # 「…前」的期限：遇节假日提前到前一个工作日')
    return not anchored


def _entry(entry: Entry, out: _Out) -> None:
    source = entry.line.text
    if entry.table == "duties" and entry.source_phrase and not source.startswith(entry.source_phrase):
        source = "…" + entry.source_phrase  # a clause of the line: cite the clause
    out.add(f"[[{entry.table}]]", cite(entry.line.number, source), f'id = "{entry.id}"')
    for note in entry.notes:
        out.check(note)
    if entry.section:
        out.add(f"section = {text(chinese(entry.section)[:MAX_LINE])}")
    out.add(f"title = {text(chinese(entry.title)[:MAX_LINE])}")
    detail = chinese(entry.detail)
    if len(detail) > MAX_TEXT:
        out.check(f"原文过长，detail 只取了前 {MAX_TEXT} 个字")
    out.add(f"detail = {text(detail[:MAX_TEXT])}")
    owed = _when(entry, out)
    if entry.lead:
        _refs("lead", entry.lead, out)
    if not owed:
        out.add("# 由登记表每一行的 unit 列（制定机关等）办理：不写 responsible")
    elif entry.responsible:
        _refs("responsible", entry.responsible, out)
    else:
        out.check("原文未写明责任单位：请填写")
        out.add("responsible = []")
    out.add("")


def render(draft: Draft, source: str, units: str | None) -> str:
    """The draft as the text of a definition file."""
    out = _Out()
    out.add(*_header(draft, source, units))
    _workflow(draft, out)
    if draft.phases:
        out.add("# ==== 阶段 ====", "")
    for phase in draft.phases:
        _phase(phase, out)
    for table, heading in (("tasks", "任务"), ("duties", "其他工作和期限")):
        entries = [e for e in draft.entries if e.table == table]
        if entries:
            out.add(f"# ==== {heading} ====", "")
        for entry in entries:
            _entry(entry, out)
    if draft.skipped:
        out.add("# ==== 未作为任务的条目（请核对是否需要督办）====")
        for line, reason in draft.skipped:
            out.add(f"{cite(line.number, line.text)}（{reason}）")
    return "\n".join(out.lines).rstrip("\n") + "\n"


def summary(draft: Draft, rendered: str) -> list[str]:
    """What was found and what was not, in a few lines (for stderr)."""
    dated = [e for e in draft.entries if e.when is not None]
    placeholders = [e for e in dated if e.when.placeholder]
    assumed = [e for e in draft.entries if e.phase_assumed]
    undated = [e for e in draft.entries if e.when is None and e.phase is None]
    refs = [r for e in draft.entries for r in (*e.lead, *e.responsible)]
    kept = list(dict.fromkeys(r.name for r in refs if r.ref is None))
    lines = [
        f"读了 {draft.lines} 行：标题「{draft.title or '（未找到）'}」；{len(draft.phases)} 个阶段，"
        f"{len(draft.tasks)} 项任务，{len(draft.duties)} 项其他工作和期限",
        f"日期：{len(dated)} 项有原文的日期或周期（其中 {len(placeholders)} 项只有周期、没有日期，写作「{TBD}」）；"
        f"{len(assumed)} 项没有自己的期限，按实施阶段办理（待核）；{len(undated)} 项没有期限（待填）",
    ]
    if draft.units_given:
        shown = "、".join(kept[:8]) + ("……" if len(kept) > 8 else "")
        lines.append(
            f"单位：匹配 {len(refs) - sum(1 for r in refs if r.ref is None)} 处，照原文保留 "
            f"{sum(1 for r in refs if r.ref is None)} 处" + (f"（{shown}）" if kept else "")
        )
    else:
        lines.append(f"单位：{len(refs)} 处照原文保留（未给 --units 单位文件）")
    lines.append(f"待核 {rendered.count('# 待核：')} 处，见草稿中的「# 待核」")
    if draft.skipped:
        where = "、".join(f"第{line.number}行" for line, _ in draft.skipped[:10])
        lines.append(f"未作为任务 {len(draft.skipped)} 条：{where}（见草稿末尾）")
    return lines


__all__ = ["chinese", "render", "summary"]
