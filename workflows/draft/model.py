"""What a draft holds, and how a plan's outline becomes it (``make_draft``).

- A **phase** is a numbered line of a 「步骤/阶段」 section that names a 阶段 and a span of dates;
  the sentences under it that name who does what become duties of that phase.
- A **task** is an item of a task section (or a row of a task table); its title is its first
  sentence, its detail its whole text. A date in its first sentence is its own; a dated clause
  elsewhere in it becomes a **duty** carved out of it (「县政府每年12月底前向县人大常委会专项报告」).
  A task with no date of its own falls in the plan's one implementation phase (marked 待核), or has
  none (``duban validate`` then asks for one).
- Units: the item's own (a parenthesis, 由……负责, its labels), else its section's labels. A duty
  carved out of a task takes the clause's subject as responsible; without one, the task's units.
  A recipient (「报……办公室」) that is a unit of the units file leads.
- Requirements and context sections give only their dated clauses (as duties).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workflows.draft.dates import When, find_dates
from workflows.draft.names import (
    PAREN,
    PAREN_DUTY,
    Match,
    Matcher,
    Named,
    by_whom,
    parentheses,
    recipients,
    subject,
)
from workflows.draft.outline import Node, build, kind_of, title_line
from workflows.draft.source import Line
from workflows.draft.tables import TableTask, table_tasks

IMPLEMENT = re.compile(r"实施|推进|落实|整改|建设|执行|攻坚")
NOT_IMPLEMENT = re.compile(r"动员|部署|准备|启动|总结|验收|考核|评估|评比|巩固|提升")
SENTENCE = re.compile(r"[^。；;！!？?]+[。；;！!？?]?")


@dataclass
class Ref:
    """One unit reference of an entry: what is written (``ref``, else the name as written)."""

    name: str
    ref: str | None
    line: int
    phrase: str
    how: str
    unsure: str | None = None

    @property
    def written(self) -> str:
        return self.ref or self.name


@dataclass
class DraftPhase:
    id: str
    name: str
    when: When
    line: Line
    description: str = ""


@dataclass
class Entry:
    table: str  # "tasks" or "duties"
    id: str
    line: Line
    title: str
    detail: str
    section: str | None = None
    when: When | None = None
    when_line: Line | None = None
    phase: DraftPhase | None = None
    phase_assumed: bool = False
    lead: list[Ref] = field(default_factory=list)
    responsible: list[Ref] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source_phrase: str = ""  # the text of the line the entry was made from (a clause of it, for a duty)


@dataclass
class Draft:
    title: str | None
    title_line: Line | None
    phases: list[DraftPhase]
    entries: list[Entry]
    skipped: list[tuple[Line, str]]
    lines: int
    units_given: bool

    @property
    def tasks(self) -> list[Entry]:
        return [e for e in self.entries if e.table == "tasks"]

    @property
    def duties(self) -> list[Entry]:
        return [e for e in self.entries if e.table == "duties"]


def sentences(text: str) -> list[str]:
    return [s for s in (m.group(0).strip() for m in SENTENCE.finditer(text)) if s]


def _clauses_with_dates(sentence: str) -> list[tuple[str, list[When]]]:
    """A sentence with one date is one clause; one with several, split at its commas, each part
    with its own dates (「县政府每年12月底前……，乡镇政府每年12月底前……」 → two)."""
    found = find_dates(sentence)
    if not found:
        return []
    if len(found) == 1:
        return [(sentence, found)]
    parts = [p for p in re.split(r"[，,]", sentence) if p.strip()]
    return [(p.strip(), find_dates(p)) for p in parts if find_dates(p)]


def _trim(clause: str) -> str:
    """A clause without its end mark, and without a parenthesis only half of which it holds."""
    text = clause.strip(" 。；;，,")
    opens, closes = text.count("（") + text.count("("), text.count("）") + text.count(")")
    if text[:1] in "（(" and text[-1:] in "）)" and opens == closes:
        inner = text[1:-1]
        if inner.count("（") + inner.count("(") == inner.count("）") + inner.count(")"):
            text = inner
    elif text[:1] in "（(" and opens > closes:
        text = text[1:]
    elif text[-1:] in "）)" and closes > opens:
        text = text[:-1]
    return text.strip(" 。；;，,")


def _title(text: str) -> str:
    """The first sentence (without its units' parenthesis), cut at a comma past 60 characters."""
    for found in (*PAREN.finditer(text), *PAREN_DUTY.finditer(text)):
        text = text.replace(found.group(0), "")
    first = re.split(r"[。；;：:]", text, maxsplit=1)[0].strip(" ，,、")
    if len(first) > 60:
        cut = max(first.rfind("，", 0, 60), first.rfind(",", 0, 60))
        first = first[:cut] if cut >= 10 else first[:60] + "…"
    return first or text[:60]


class _Builder:
    def __init__(self, lines: list[Line], matcher: Matcher):
        self.lines, self.matcher = lines, matcher
        self.phases: list[DraftPhase] = []
        self.entries: list[Entry] = []
        self.skipped: list[tuple[Line, str]] = []

    # -- units ------------------------------------------------------------------------------------

    def refs(self, found: list[tuple[Line, Named]], role: str) -> list[Ref]:
        out: list[Ref] = []
        for line, named in found:
            if named.role != role:
                continue
            for name in named.names:
                match: Match = self.matcher.match(name)
                if any(r.written == (match.ref or match.name) for r in out):
                    continue
                out.append(Ref(name, match.ref, line.number, named.phrase, match.how, match.unsure))
        return out

    def own_units(self, node: Node) -> list[tuple[Line, Named]]:
        found = [(node.line, n) for n in parentheses(node.text) + by_whom(node.text)] if node.line else []
        for line in node.body:
            found += [(line, n) for n in parentheses(line.text)]
        return found + list(node.labels)

    # -- phases -----------------------------------------------------------------------------------

    def phase_of(self, node: Node) -> DraftPhase | None:
        spans = [w for w in find_dates(node.text) if w.kind == "span"]
        if not spans or ("阶段" not in node.text and node.line.cells is None and not node.heading):
            return None
        name = node.text.split("阶段")[0] + "阶段" if "阶段" in node.text else node.text[: spans[0].start]
        name = re.split(r"[，,：:（(]\s*(?:时间|$)", name)[0].strip(" ，,：:（(")
        phase = DraftPhase(
            f"P{len(self.phases) + 1}", name or f"第{len(self.phases) + 1}阶段", spans[0], node.line
        )
        rest = node.text[spans[0].start + len(spans[0].phrase) :].strip(" 。，,）)")
        phase.description = " ".join([rest, *(b.text for b in node.body)]).strip()
        self.phases.append(phase)
        return phase

    def implementation_phase(self) -> DraftPhase | None:
        fits = [
            p
            for p in self.phases
            if IMPLEMENT.search(p.name) and not NOT_IMPLEMENT.search(p.name.replace("实施阶段", ""))
        ]
        if len(fits) != 1:
            fits = [p for p in self.phases if IMPLEMENT.search(p.name)]
        return fits[0] if len(fits) == 1 else None

    # -- entries ----------------------------------------------------------------------------------

    def entry(self, table: str, line: Line, title: str, detail: str, section: str | None) -> Entry:
        number = sum(1 for e in self.entries if e.table == table) + 1
        entry = Entry(table, f"{'T' if table == 'tasks' else 'D'}{number:02d}", line, title, detail, section)
        entry.source_phrase = detail
        self.entries.append(entry)
        return entry

    def duty(self, line: Line, clause: str, when: When | None, section, *, parent=None, phase=None) -> Entry:
        text = _trim(clause)
        entry = self.entry("duties", line, _title(text), text, section)
        entry.when, entry.when_line, entry.phase = when, line if when else None, phase
        who = subject(text)
        units = [(line, n) for n in by_whom(text) + parentheses(clause)]
        if who is not None:
            units.append((line, who))
        collected = [(line, n) for n in recipients(text)] if self.matcher.directory is not None else []
        entry.lead = self.refs(units, "lead") + [r for r in self.refs(collected, "lead") if r.ref is not None]
        entry.responsible = self.refs(units, "responsible")
        if parent is not None and who is None and not entry.responsible:
            entry.responsible = list(parent.responsible)  # the item's own work: its units
            if not entry.lead and parent.lead:  # its first-listed lead is the main one (主牵头单位)
                entry.lead = parent.lead[:1]
                if len(parent.lead) > 1:
                    others = "、".join(r.name for r in parent.lead[1:])
                    entry.notes.append(
                        f"原文未写本项的牵头单位：取所在事项的主牵头单位（排第一位的）；其他牵头单位：{others}"
                    )
        elif parent is not None and not entry.lead and parent.lead:
            shown = "、".join(r.name for r in parent.lead)
            entry.notes.append(f"原文未写本项的牵头单位（所在事项的牵头单位：{shown}）")
        return entry

    def dated_duties(self, line: Line, text: str, section, *, parent=None, skip: When | None = None) -> None:
        """A duty for each dated clause of ``text`` (but the one ``skip`` was read from)."""
        offset = 0
        for sentence in sentences(text):
            start = text.find(sentence, offset)
            offset = start + len(sentence)
            for clause, found in _clauses_with_dates(sentence):
                at = start + sentence.find(clause) + clause.find(found[0].phrase)
                if skip is not None and at == skip.start:
                    continue
                self.duty(line, clause, found[0], section, parent=parent)

    def task(self, node: Node, section: str, inherited: list[tuple[Line, Named]]) -> None:
        detail = " ".join([node.text, *(b.text for b in node.body)]).strip()
        entry = self.entry("tasks", node.line, _title(node.text), detail, section)
        entry.source_phrase = node.text
        first = sentences(node.text)[:1]
        own = [w for w in find_dates(first[0])] if first else []
        if own:
            entry.when, entry.when_line = own[0], node.line
        units = self.own_units(node)
        entry.lead = self.refs(units, "lead") or self.refs(inherited, "lead")
        entry.responsible = self.refs(units, "responsible") or self.refs(inherited, "responsible")
        self.dated_duties(node.line, node.text, section, parent=entry, skip=entry.when)
        for body in node.body:
            self.dated_duties(body, body.text, section, parent=entry)

    def table_task(self, row: TableTask, section: str) -> None:
        entry = self.entry("tasks", row.line, _title(row.title), row.detail, section)
        entry.source_phrase = row.title
        if row.when is not None:
            entry.when, entry.when_line = row.when, row.line
        entry.lead = self.refs([(row.line, n) for n in row.units], "lead")
        entry.responsible = self.refs([(row.line, n) for n in row.units], "responsible")

    # -- sections ---------------------------------------------------------------------------------

    def section(self, node: Node, kind: str, inherited: list[tuple[Line, Named]], name: str) -> None:
        inherited = list(node.labels) or inherited
        for row in table_tasks(node.table):
            if kind == "tasks":
                self.table_task(row, name)
        if kind == "context":  # 指导思想, 总体要求: a goal 「到2025年底」 is no deadline to supervise
            return
        for line in node.body if node.rank else ():
            if kind != "tasks" or node.heading:
                self.dated_duties(line, line.text, name)
        for child in node.children:
            child_name = child.title if child.heading and kind == "tasks" else name
            if kind == "phases" and child.line is not None:
                phase = self.phase_of(child)
                if phase is not None:
                    self.phase_duties(child, phase, name)
                    continue
            if (child.heading and child.children) or (child.heading and kind == "tasks" and child.table):
                self.section(child, kind, inherited, child_name)
            elif kind == "tasks" and not child.heading:
                self.task(child, name, inherited)
                for row in table_tasks(child.table):  # a table after an item: the section's
                    self.table_task(row, name)
            elif kind == "tasks":
                self.section(child, kind, inherited, child_name)
            else:
                self.dated_duties(child.line, child.text, name)
                for line in child.body:
                    self.dated_duties(line, line.text, name)
                if not find_dates(child.text) and child.line is not None:
                    self.skipped.append((child.line, f"「{kind_word(kind)}」中的条目，未作为任务"))

    def phase_duties(self, node: Node, phase: DraftPhase, section: str) -> None:
        """The sentences of a phase that say who does what: duties of the phase (or of their own date)."""
        after = node.text[node.text.find(phase.when.phrase) + len(phase.when.phrase) :]
        for line, text in [(node.line, after), *((b, b.text) for b in node.body)]:
            for sentence in sentences(text):
                parts = [p for p in re.split(r"(?<=[，,])", sentence) if p.strip(" ，,")]
                for k, part in enumerate(parts):
                    if by_whom(part):
                        clause = sentence
                    elif subject(part.strip(" ，,")) is not None:
                        clause = "".join(parts[k:])
                    else:
                        continue
                    dates = [w for w in find_dates(clause) if w.kind != "span"]
                    self.duty(
                        line, clause, dates[0] if dates else None, section, phase=None if dates else phase
                    )
                    break


def kind_word(kind: str) -> str:
    return {"context": "总体要求", "requirements": "工作要求", "phases": "工作步骤"}.get(kind, kind)


def make_draft(lines: list[Line], matcher: Matcher) -> Draft:
    """The draft of a plan's ``lines`` (see the module's doc)."""
    root = build(lines)
    builder = _Builder(lines, matcher)
    sections = root.children or [root]
    ordered = sorted(sections, key=lambda s: kind_of(s) != "phases")  # phases first: tasks may fall in one
    for node in ordered:
        kind = "tasks" if node is root else kind_of(node)
        builder.section(node, kind, [], node.title if node is not root else "")
    builder.entries.sort(key=lambda e: (e.table, e.line.number))
    for table in ("tasks", "duties"):
        for number, entry in enumerate((e for e in builder.entries if e.table == table), start=1):
            entry.id = f"{'T' if table == 'tasks' else 'D'}{number:02d}"
    implement = builder.implementation_phase()
    for entry in builder.entries:
        if entry.when is None and entry.phase is None and implement is not None:
            entry.phase, entry.phase_assumed = implement, True
    title = title_line(root, lines)
    return Draft(
        title.text if title else None,
        title,
        builder.phases,
        builder.entries,
        builder.skipped,
        max((line.number for line in lines), default=0),
        matcher.directory is not None,
    )


__all__ = ["Draft", "DraftPhase", "Entry", "Ref", "make_draft", "sentences"]
