"""How close ``duban draft`` comes to a definition written by hand (issue 31, point 3).

Runs ``duban draft`` on the pilot's own text (``../shared/seed/rule-of-law-pilot-plan.zh.txt`` by
default) with the example units and compares the draft with
``workflows/definitions/rule_of_law_pilot.toml``:

- **entries** (tasks and duties): a draft entry matches the reference entry whose ``detail`` (else
  ``title``) reads most alike (difflib ratio of the texts without punctuation, at least 0.6, one to
  one, best pairs first); recall = matched reference entries / all, precision = matched draft
  entries / all. The same for [[tasks]] alone.
- **dates and windows** of matched entries and of the phases (matched by name): an entry's due
  dates in 2026–2028 as duban computes them (its ``due``, its ``rrule``'s occurrences or its
  phase's end, moved to a working day by its ``roll``; ``anchored`` for an anchor), its opening (its ``window``, else its phase's start); a phase's start and end. "Stated"
  leaves out the reference's dates it marks ``the plan gives no date`` (dates its author chose: the
  draft must not invent them); "all" keeps them.
- **lead units** of matched entries (``lead`` references as written); also for [[tasks]] alone.

Recall counts what the reference has that the draft has too (an unmatched reference entry's facts
count as missed); precision counts what the draft gives for matched entries that the reference
has too (an unmatched draft entry is counted once, in the entries' precision).

    .venv/bin/python benchmarks/draft_quality.py [PLAN] [--units FILE] [--reference FILE] [--keep DRAFT]
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
import tempfile
import tomllib
import unicodedata
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DUBAN = str(Path(sys.executable).with_name("duban"))
DEFAULT_PLAN = REPO.parent / "shared" / "seed" / "rule-of-law-pilot-plan.zh.txt"
YEARS = (2026, 2027, 2028)
NO_DATE = "the plan gives no date"
VERBOSE = "--verbose" in sys.argv


def normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def blocks(path: Path) -> dict[tuple[str, int], str]:
    """(table, index) → the TOML text of that [[tasks]]/[[duties]] entry (for its comments)."""
    found: dict[tuple[str, int], str] = {}
    counts = {"tasks": -1, "duties": -1}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        header = re.match(r"^\[\[(tasks|duties|phases)\]\]", line)
        if header:
            table = header.group(1)
            if table in counts:
                counts[table] += 1
                current = (table, counts[table])
                found[current] = ""
            else:
                current = None
            continue
        if line.startswith("[") and not line.startswith("[["):
            current = None
        if current is not None:
            found[current] += line + "\n"
    return found


def entries(data: dict, path: Path) -> list[dict]:
    texts = blocks(path)
    out = []
    for table in ("tasks", "duties"):
        for i, entry in enumerate(data.get(table, [])):
            out.append({**entry, "_table": table, "_text": texts.get((table, i), "")})
    return out


def occurrences(rule: str, year: int) -> list[date]:
    from workflows.recurrence import occurrences_in_year

    try:
        return list(occurrences_in_year(rule, year))
    except Exception:
        return []  # a placeholder (待定): no date


def _calendar():
    from workflows.calendar import make_calendar

    return make_calendar("cn-workdays", on_assumed=lambda *_: None)  # 2027–2028: the statutory fallback


CALENDAR = None


def due_dates(nominal: list[date], roll: str) -> set:
    """Due dates as duban computes them: moved to a working day (back for ``roll = "backward"``)."""
    global CALENDAR
    CALENDAR = CALENDAR or _calendar()
    move = CALENDAR.prev_workday if roll == "backward" else CALENDAR.next_workday
    return {f"due {move(d)}" for d in nominal}


def dues(entry: dict, phases: dict) -> set:
    """An entry's due dates in 2026–2028 after the working-day rule (``anchored`` for an anchor)."""
    from workflows.monthday import parse_month_day

    roll = entry.get("roll", "forward")
    if "anchor" in entry:
        return {"anchored"}
    if isinstance(entry.get("due"), str) and re.fullmatch(r"\d\d-\d\d", entry["due"]):
        day = parse_month_day(entry["due"])
        return due_dates([day.in_year(y) for y in YEARS], roll)
    if "rrule" in entry:
        return due_dates([d for y in YEARS for d in occurrences(entry["rrule"], y)], roll)
    phase = phases.get(entry.get("phase"))
    if phase is None:
        return set()
    end = parse_month_day(phase["end"])
    return due_dates([end.in_year(y) for y in YEARS], roll)


def opening(entry: dict, phases: dict) -> set:
    if "window" in entry:
        return {f"opens {entry['window']}"}
    phase = phases.get(entry.get("phase"))
    return {f"opens {phase['start']}"} if phase else set()


def match(draft: list[dict], reference: list[dict], key=lambda e: e.get("detail") or e.get("title", "")):
    pairs = []
    for i, d in enumerate(draft):
        for j, r in enumerate(reference):
            ratio = difflib.SequenceMatcher(None, normal(key(d)), normal(key(r)), autojunk=False).ratio()
            if ratio >= 0.6:
                pairs.append((ratio, i, j))
    used_d, used_r, matched = set(), set(), []
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            matched.append((draft[i], reference[j]))
    return matched


class Tally:
    def __init__(self):
        self.tp = self.fp = self.fn = 0

    def add(self, got: set, wanted: set, judged: bool = True) -> None:
        self.tp += len(got & wanted)
        self.fn += len(wanted - got)
        if judged:
            self.fp += len(got - wanted)

    def line(self, name: str) -> str:
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        return f"{name:<34} recall {recall:6.1%} ({self.tp}/{self.tp + self.fn})   precision {precision:6.1%} ({self.tp}/{self.tp + self.fp})"


def compare(draft_path: Path, reference_path: Path) -> list[str]:
    draft_data = tomllib.loads(draft_path.read_text(encoding="utf-8"))
    reference_data = tomllib.loads(reference_path.read_text(encoding="utf-8"))
    d_phases = {p["id"]: p for p in draft_data.get("phases", [])}
    r_phases = {p["id"]: p for p in reference_data.get("phases", [])}
    drafted, wanted = entries(draft_data, draft_path), entries(reference_data, reference_path)
    pairs = match(drafted, wanted)
    lines = []
    for name, only in (("entries (tasks and duties)", None), ("[[tasks]] alone", "tasks")):
        d = [e for e in drafted if only in (None, e["_table"])]
        r = [e for e in wanted if only in (None, e["_table"])]
        hit = [(a, b) for a, b in pairs if a in d and b in r]
        tally = Tally()
        tally.tp, tally.fn, tally.fp = len(hit), len(r) - len(hit), len(d) - len(hit)
        lines.append(tally.line(name))
    stated, strict, leads, task_leads = Tally(), Tally(), Tally(), Tally()
    paired = {id(b): a for a, b in pairs}
    for ref in wanted:
        got = paired.get(id(ref))
        invented = NO_DATE in ref["_text"]
        facts = dues(ref, r_phases) | opening(ref, r_phases)
        mine = (dues(got, d_phases) | opening(got, d_phases)) if got else set()
        strict.add(mine, facts, judged=got is not None)
        if VERBOSE and (mine != facts or set(ref.get("lead", [])) != set(got.get("lead", []) if got else [])):
            print(
                f"  {ref['id']} ~ {got['id'] if got else '-'}: dates {sorted(mine)} / {sorted(facts)}"
                f"{' (no date in the plan)' if invented else ''}; lead {got.get('lead') if got else None} / {ref.get('lead')}"
            )
        if not invented:
            stated.add(mine, facts, judged=got is not None)
        lead = set(ref.get("lead", []))
        mine_lead = set(got.get("lead", [])) if got else set()
        leads.add(mine_lead, lead, judged=got is not None)
        if ref["_table"] == "tasks":
            task_leads.add(mine_lead, lead, judged=got is not None)
    for got, ref in match(list(d_phases.values()), list(r_phases.values()), key=lambda p: p.get("name", "")):
        facts = {f"start {ref['start']}", f"end {ref['end']}"}
        mine = {f"start {got['start']}", f"end {got['end']}"}
        stated.add(mine, facts)
        strict.add(mine, facts)
    for ref in r_phases.values():  # an unmatched reference phase: its dates are missed
        if not any(
            ref is b for _, b in match(list(d_phases.values()), [ref], key=lambda p: p.get("name", ""))
        ):
            stated.add(set(), {"start", "end"})
            strict.add(set(), {"start", "end"})
    lines += [
        stated.line("dates and windows (stated)"),
        strict.line("dates and windows (all)"),
        leads.line("lead units"),
        task_leads.line("lead units of [[tasks]]"),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "plan", nargs="?", type=Path, default=DEFAULT_PLAN, help="the plan's text (.txt or .docx)"
    )
    parser.add_argument("--units", type=Path, default=REPO / "examples/units.example.toml")
    parser.add_argument(
        "--reference", type=Path, default=REPO / "workflows/definitions/rule_of_law_pilot.toml"
    )
    parser.add_argument("--keep", type=Path, help="also write the draft here")
    parser.add_argument("--verbose", action="store_true", help="print each entry that differs")
    args = parser.parse_args(argv)
    if not args.plan.is_file():
        print(
            f"draft_quality: {args.plan}: no such file — give the path of the pilot's plan text "
            "(shared/seed/rule-of-law-pilot-plan.zh.txt beside the repository)",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "draft.toml"
        command = [DUBAN, "draft", str(args.plan), "--units", str(args.units), "--out", str(out)]
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8")
        if result.returncode != 0:
            print(
                f"draft_quality: duban draft failed ({result.returncode}): {result.stderr.strip()}",
                file=sys.stderr,
            )
            return 1
        if args.keep:
            args.keep.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"duban draft {args.plan.name} --units {args.units.name}, against {args.reference.name}")
        for line in result.stderr.splitlines():
            print(f"  {line}")
        for line in compare(out, args.reference):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
