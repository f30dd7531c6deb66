"""The unit phrases of Chinese government plans, and their matching to the roles of a units file.

Phrases (each finding keeps the exact text it was read from, for the draft's citation):

- labels: 「牵头单位：A、B」「责任单位：C」 (also 牵头部门, 责任部门, 配合单位, 协办单位, 参与单位);
- a parenthesis at an item's end: 「（A牵头，B按职责分工负责）」「（A牵头，B配合）」「（A负责）」;
- 「由A负责」「由A牵头」「由A会同B制定」;
- a clause's subject: 「县政府每年……」「各乡镇人民政府和各行政执法机关要……」;
- a recipient: 「……报县推进依法行政工作领导小组办公室」 (the office that collects: a lead, when it
  is one of the units file's).

Matching a name to a units file (``Matcher``): the unit whose name it is (「县法院」 is 「县人民法院」:
人民 and 中共 are left out of both; an abbreviation keeps the first and last characters and the
order of the others: 「县人保局」 is 「县人力资源和社会保障局」, when only one unit fits); then a
collective name (「各乡镇人民政府」「各行政执法机关」) against the role ids' words through a small
glossary of what Chinese unit names say (乡镇 → township, 执法 → enforcement, …), when exactly one
role fits both ways. A unit is written as its own role when it alone holds one, else by its id. A
name nothing matches is kept as written and marked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from workflows.units import UnitDirectory

LABELS = {
    "牵头单位": "lead", "牵头部门": "lead", "主办单位": "lead", "责任单位": "responsible",
    "责任部门": "responsible", "配合单位": "responsible", "配合部门": "responsible",
    "协办单位": "responsible", "参与单位": "responsible", "承办单位": "responsible",
}  # fmt: skip
LABEL = re.compile(r"(?P<label>" + "|".join(LABELS) + r")\s*[:：]\s*(?P<names>[^；;。）)\n]+)")
PAREN = re.compile(
    r"[（(](?P<lead>[^（）()：:]{2,80}?)(?:牵头|负责牵头)"
    r"(?:[，,、；;]\s*(?P<resp>[^（）()]{2,120}?)(?:按职责分工负责|按职责分工落实|按照职责分工负责|配合|参与|负责|共同负责))?[)）]"
)
PAREN_DUTY = re.compile(r"[（(](?P<resp>[^（）()：:，,]{2,80}?)(?:负责|按职责分工负责)[)）]")
BY = re.compile(r"由(?P<who>[^，,。；;（）()]{2,60}?)(?P<how>牵头|负责|会同|组织|承担|制定)")
RECIPIENT = re.compile(r"(?:报送|报|提交|送)(?:至|给)?(?=[县市省区乡镇各])")
SPLIT = re.compile(r"[、，,/]|以及|和|及|与|会同")
LEVEL = ("县", "市", "省", "区", "乡", "镇", "街道", "各", "全县", "中共", "村", "社区")
SUFFIX = re.compile(
    r"(?:人民政府|政府|办公室|领导小组|常委会|主席团|委员会|局|办|委|中心|院|所|站|队|机关|部门|乡镇|街道)$"
)
VAGUE = {
    "各单位",
    "有关单位",
    "相关单位",
    "本单位",
    "各部门",
    "有关部门",
    "相关部门",
    "牵头单位",
    "责任单位",
    "各地",
}
UNIT_END = re.compile(r"人民政府|政府|办公室|领导小组|局|办|委|中心|院|机关|部门|单位|乡镇|街道")
_STOP = set("，,。；;：:（）()[]《》“”\"' 　")
_NOT_NAME = ("将", "要", "应", "也", "向", "对", "于", "在", "每", "按", "的", "是", "为", "报", "和", "及", "与", "、",
             "制定", "召开", "开展", "组织", "建立", "认真", "切实", "进一步", "及时", "负责", "牵头", "会同", "根据",
             "通过")  # fmt: skip
_JOIN = ("、", "和", "及", "与", "以及")
_START = ("各", "县", "市", "省", "区", "乡", "镇", "全县", "中共", "街道")


def name_at(text: str, start: int) -> int | None:
    """Where a unit name that begins at ``start`` ends: at the first unit word (局, 办公室, 政府…),
    then on over a short tail that is still a name (县政府 → 县政府办公室, 县政府法制办), or None."""
    window = ""
    for ch in text[start : start + 40]:
        if ch in _STOP:
            break
        window += ch
    first = UNIT_END.search(window)
    if first is None:
        return None
    end = first.end()
    while True:
        following = UNIT_END.search(window, end)
        if following is None:
            return start + end
        tail = window[end : following.end()]
        if len(tail) > 5 or any(word in tail for word in _NOT_NAME) or any(ch.isdigit() for ch in tail):
            return start + end
        end = following.end()


@dataclass(frozen=True)
class Named:
    """Names read from one phrase: ``role`` is lead or responsible; ``phrase`` is its text in the line."""

    role: str
    names: tuple[str, ...]
    phrase: str
    start: int


def split_names(text: str) -> tuple[str, ...]:
    """「县政府法制办、县政府办公室、县监察局。」 → the three names (「等」 and blanks left out)."""
    names = []
    for part in SPLIT.split(text):
        name = part.strip().strip("。.；;：:").removesuffix("等").strip()
        if len(name) >= 2:
            names.append(name)
    return tuple(names)


def labels(text: str) -> list[Named]:
    """「牵头单位：…」 and 「责任单位：…」 in a line (a line may hold both)."""
    return [
        Named(LABELS[m.group("label")], split_names(m.group("names")), m.group(0).rstrip(), m.start())
        for m in LABEL.finditer(text)
    ]


def parentheses(text: str) -> list[Named]:
    """「（A牵头，B按职责分工负责）」 and 「（A负责）」."""
    found = []
    for m in PAREN.finditer(text):
        found.append(Named("lead", split_names(m.group("lead")), m.group(0), m.start()))
        if m.group("resp"):
            found.append(Named("responsible", split_names(m.group("resp")), m.group(0), m.start()))
    for m in PAREN_DUTY.finditer(text):
        if not any(f.start == m.start() for f in found):
            found.append(Named("responsible", split_names(m.group("resp")), m.group(0), m.start()))
    return found


def by_whom(text: str) -> list[Named]:
    """「由A负责」 (A is responsible), 「由A牵头」 (A leads), 「由A、B会同C……」 (A and B do it, A the
    first named convening: it leads)."""
    found = []
    for m in BY.finditer(text):
        names = split_names(m.group("who"))
        if m.group("how") == "牵头":
            found.append(Named("lead", names, m.group(0), m.start()))
        elif m.group("how") == "会同":  # 「由A、B会同C」: A, the first named, convenes (主办)
            found.append(Named("lead", names[:1], m.group(0), m.start()))
        if m.group("how") != "牵头":
            found.append(Named("responsible", names, m.group(0), m.start()))
    return found


def subject(clause: str) -> Named | None:
    """The units a clause begins with (「县政府每年……」 → 县政府; 「各乡镇人民政府和各行政执法机关要……」
    → both), not a vague 「各单位」."""
    offset = len(clause) - len(clause.lstrip("（(，,；; 由"))
    pos, names = offset, []
    while clause.startswith(_START, pos):
        end = name_at(clause, pos)
        if end is None:
            break
        names.append(clause[pos:end])
        joined = next((j for j in _JOIN if clause.startswith(j, end)), None)
        if joined is None:
            break
        pos = end + len(joined)
    kept = tuple(n for n in names if n not in VAGUE)
    if not kept:
        return None
    last = clause.index(names[-1], offset) + len(names[-1])
    return Named("responsible", kept, clause[offset:last], offset)


def recipients(text: str) -> list[Named]:
    """「……报县推进依法行政工作领导小组办公室」: the unit that collects (a lead, if it is a unit here)."""
    found = []
    for m in RECIPIENT.finditer(text):
        end = name_at(text, m.end())
        if end is not None:
            found.append(Named("lead", (text[m.end() : end],), text[m.end() : end], m.end()))
    return found


# -- matching names to a units file -----------------------------------------------------------------

GLOSSARY: dict[str, tuple[str, ...]] = {
    "乡镇": ("township",), "乡": ("township",), "镇": ("township",), "街道": ("township",),
    "县委": ("county", "party", "committee"), "党委": ("party", "committee"),
    "县": ("county",), "人大": ("congress",), "政协": ("cppcc",), "常委会": ("standing", "committee"),
    "主席团": ("presidium",), "执法": ("law", "enforcement"), "法制": ("legal",), "法治": ("legal",),
    "司法": ("justice",), "法院": ("court",), "检察": ("procuratorate",), "审计": ("audit",),
    "财政": ("finance",), "监察": ("supervision",), "信息": ("information",), "投诉": ("complaint",),
    "行政服务": ("administrative", "service"), "服务中心": ("service", "center"), "编办": ("staffing",),
    "编制": ("staffing",), "人保": ("human", "resources"), "人社": ("human", "resources"),
    "人力资源": ("human", "resources"), "督查": ("inspection",), "领导小组": ("leading", "group"),
    "公安": ("police", "public", "security"), "教育": ("education",), "民政": ("civil", "affairs"),
}  # fmt: skip
GENERIC = {"office", "bureau", "agency", "unit", "department", "government", "center", "organ", "affairs"}
_KNOWN_TOKENS = {t for tokens in GLOSSARY.values() for t in tokens}


def _normal(name: str) -> str:
    name = re.sub(r"\s+", "", name)
    for prefix in ("各", "全县", "县直", "有关", "相关", "所属"):
        name = name.removeprefix(prefix)
    return name.replace("人民", "").replace("中共", "").removesuffix("等")


def _subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


_PLAIN = re.compile(r"县|人民|政府|办公室|机关|部门|单位|局|办|委")


def _unexplained(name: str) -> str:
    """What of a name neither the glossary nor the plain words of unit names account for."""
    for word in sorted(GLOSSARY, key=len, reverse=True):
        name = name.replace(word, "")
    return _PLAIN.sub("", name)


def _tokens(name: str) -> set[str]:
    found: set[str] = set()
    rest = name
    for word in sorted(GLOSSARY, key=len, reverse=True):
        if word in rest:
            found.update(GLOSSARY[word])
            rest = rest.replace(word, " ")
    return found


@dataclass(frozen=True)
class Match:
    """A name read as a reference: ``ref`` (``role:X`` or a unit id) or None (kept as written);
    ``how`` says how it was found; ``unsure`` is the 待核 note, if any."""

    name: str
    ref: str | None
    how: str
    unsure: str | None = None


class Matcher:
    """Names → references of one units file (see the module's doc)."""

    def __init__(self, directory: UnitDirectory | None):
        self.directory = directory
        units = directory.units if directory else ()
        self._names = [(_normal(u.name), u) for u in units]
        self._holders: dict[str, int] = {}
        for unit in units:
            for role in unit.roles:
                self._holders[role] = self._holders.get(role, 0) + 1

    def match(self, name: str) -> Match:
        if self.directory is None:
            return Match(name, None, "as written", "未给单位文件（--units），照原文保留")
        collective = "各" in name or _normal(name) in ("乡镇", "乡镇政府", "乡镇人民政府")
        head = name.rsplit("各", 1)[-1] if "各" in name[1:] else name
        if not collective:
            unit = self._unit(_normal(name))
            if unit is not None:
                return self._unit_ref(name, unit)
        role, others = self._role(head)
        if role is not None:
            return Match(name, f"role:{role}", "按角色名")
        if others:
            listed = "、".join(others)
            return Match(name, None, "as written", f"「{name}」可能是这些角色之一：{listed}，请选定")
        return Match(name, None, "as written", f"单位文件中没有「{name}」，照原文保留")

    def _unit(self, normal: str):
        exact = [u for n, u in self._names if n == normal]
        if len(exact) == 1:
            return exact[0]
        if len(normal) < 3 or exact:
            return None
        short = [
            u for n, u in self._names if n[0] == normal[0] and n[-1] == normal[-1] and _subsequence(normal, n)
        ]
        return short[0] if len(short) == 1 else None

    def _unit_ref(self, name: str, unit) -> Match:
        own = [r for r in unit.roles if self._holders.get(r) == 1]
        if own:
            return Match(name, f"role:{own[0]}", f"单位「{unit.name}」")
        return Match(name, unit.id, f"单位「{unit.name}」（无独有角色，按单位标识）")

    def _role(self, name: str) -> tuple[str | None, list[str]]:
        phrase = _tokens(_normal(name)) - GENERIC
        if not phrase or (phrase == {"county"} and _unexplained(_normal(name))):
            return None, []  # 「县气象局」 says more than 县: not 县政府
        fits = []
        for role in self._holders:
            tokens = {t for t in role.lower().replace("-", "_").split("_") if t in _KNOWN_TOKENS}
            distinct = tokens - GENERIC
            if distinct and distinct <= phrase and phrase - {"county"} <= tokens | {"county"}:
                fits.append(role)
        if len(fits) == 1:
            return fits[0], []
        return None, fits


def match_all(matcher: Matcher, names: Iterable[str]) -> list[Match]:
    return [matcher.match(name) for name in names]


__all__ = ["LABELS", "Match", "Matcher", "Named", "by_whom", "labels", "match_all", "parentheses",
           "recipients", "split_names", "subject"]  # fmt: skip
