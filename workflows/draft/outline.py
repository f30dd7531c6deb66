"""A plan's lines as an outline: numbered headings and items, their paragraphs, their unit labels.

Chinese government documents number their levels 「一、」 → 「（一）」 → 「1.」/「1、」 → 「（1）」 → 「①」
(GB/T 9704 and common practice); a .docx may instead use heading styles (标题 1…) or Word's own
numbering. A numbered line with numbered lines under it, or a short one, is a heading; the others
are items (a plan's tasks, or a phase's line). A 「牵头单位：」/「责任单位：」 line belongs to the
item before it, unless only the last item of a section has one: then it is the section's (the
pilot's way: the units after the section's last item stand for all of them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workflows.draft.names import LABEL, Named, labels
from workflows.draft.source import Line

CN = "一二三四五六七八九十"
NUMBERING = (
    (1, re.compile(rf"^\s*([{CN}]{{1,3}})\s*[、.．]\s*")),
    (2, re.compile(rf"^\s*[（(]\s*([{CN}]{{1,3}})\s*[)）]\s*[、.．]?\s*")),
    (3, re.compile(r"^\s*(\d{1,3})\s*(?:[、．]|\.(?!\d))\s*")),
    (4, re.compile(r"^\s*[（(]\s*(\d{1,3})\s*[)）]\s*")),
    (5, re.compile(r"^\s*([①-⑳])\s*")),
)
SHORT = 30  # a numbered line this short, without a full stop inside, reads as a heading
KINDS = (
    ("context", re.compile(r"指导思想|总体要求|基本原则|目的意义|工作目标|总体目标|适用范围|背景|依据")),
    ("phases", re.compile(r"步骤|阶段|进度安排|时间安排|实施安排|时间节点|方法步骤")),
    ("requirements", re.compile(r"保障|要求|组织领导|工作机制|纪律|组织实施|附则")),
)


@dataclass
class Node:
    """A numbered line (or the document itself, rank 0) with the paragraphs and nodes under it."""

    rank: int
    label: str
    text: str
    line: Line | None
    body: list[Line] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    labels: list[tuple[Line, Named]] = field(default_factory=list)
    table: list[Line] = field(default_factory=list)

    @property
    def heading(self) -> bool:
        """A heading has numbered lines (or a table) under it; an item does not."""
        if self.rank == 0 or self.children:
            return True
        return (
            bool(self.table)
            and len(self.text) <= SHORT
            and not re.search(r"[。；;]", self.text.rstrip("。；; "))
        )

    @property
    def title(self) -> str:
        return f"{self.label}{self.text}".strip()

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def numbering(line: Line) -> tuple[int, str, str] | None:
    """(rank, the number as written, the rest of the line) of a numbered line, else None."""
    if line.cells is not None:
        return None
    for rank, pattern in NUMBERING:
        found = pattern.match(line.text)
        if found and len(line.text) > found.end():
            return rank, line.text[: found.end()].strip(), line.text[found.end() :].strip()
    if line.heading is not None:
        return line.heading, "", line.text
    if line.numbered:
        return 3, "", line.text
    return None


def is_label_line(line: Line) -> bool:
    found = LABEL.search(line.text)
    return found is not None and found.start() <= 2


def build(lines: list[Line]) -> Node:
    """The outline of ``lines`` (the document is the root, rank 0)."""
    root = Node(0, "", "", None)
    stack = [root]
    for line in lines:
        found = numbering(line)
        if found is not None:
            rank, label, text = found
            while stack[-1].rank >= rank:
                stack.pop()
            node = Node(rank, label, text, line)
            stack[-1].children.append(node)
            stack.append(node)
        elif line.cells is not None:
            stack[-1].table.append(line)
        elif is_label_line(line):
            stack[-1].labels.extend((line, named) for named in labels(line.text))
        else:
            stack[-1].body.append(line)
    _lift_section_labels(root)
    return root


def _lift_section_labels(node: Node) -> None:
    """Labels that only the last of several items has are the section's (see the module's doc)."""
    for child in node.children:
        _lift_section_labels(child)
    items = [c for c in node.children if not c.children]
    labelled = [c for c in items if c.labels]
    if len(items) >= 2 and labelled == [items[-1]] and not node.labels:
        node.labels, items[-1].labels = items[-1].labels, []


def kind_of(section: Node) -> str:
    """What a top-level section holds: context, phases, requirements or tasks (the default)."""
    for kind, pattern in KINDS:
        if pattern.search(section.text):
            return kind
    return "tasks"


def title_line(root: Node, lines: list[Line]) -> Line | None:
    """The plan's title: the first short line before the first heading that names a kind of document."""
    first = root.children[0].line.number if root.children and root.children[0].line else None
    for line in lines:
        if first is not None and line.number >= first:
            break
        text = line.text.strip()
        if len(text) <= 60 and re.search(r"(方案|规划|计划|意见|办法|要点|安排|通知|细则)$", text):
            return line
    return None


__all__ = ["Node", "build", "is_label_line", "kind_of", "numbering", "title_line"]
