"""What reading an import-status file costs (issue 26, point 10): time and peak memory, hostile or not.

Each file is built with ``tests/hostile_files.py`` (zipfile, as an attacker would) and read by
``orchestrator.admin.status_file.read_status_file`` in a fresh subprocess; the script prints the
file's size, the seconds, the peak resident memory (``VmHWM``) and the first line of the outcome.
The floor is a fresh interpreter that imports the reader and reads a two-row CSV.

    .venv/bin/python benchmarks/import_files.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import hostile_files as hostile  # noqa: E402

READ = """
import sys
from pathlib import Path
from orchestrator.admin.status_file import read_status_file
from workflows.errors import DubanError
try:
    rows = read_status_file(Path(sys.argv[1])).rows
    outcome = f"{len(rows)} rows"
except DubanError as exc:
    outcome = str(exc).splitlines()[0].split(": ", 1)[1]
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(peak, outcome)
"""


def legit(path: Path, rows: int) -> Path:
    """``rows`` filled-in rows of the before-start list (13 columns, texts shared), as Excel saves them."""
    texts = ["已完成", "县司法局〔2026〕3号", "报送本单位工作方案", "县公安局", "逾期3天", "提醒"]
    body = [
        hostile.row(
            1,
            *(
                hostile.inline(f"{c}1", h)
                for c, h in zip(
                    "ABCDEFGHIJKLM",
                    [
                        "事项编号",
                        "任务编号",
                        "事项",
                        "期次",
                        "责任单位编号",
                        "责任单位",
                        "截止日期",
                        "逾期",
                        "类别",
                        "状态",
                        "完成日期",
                        "佐证材料",
                        "理由",
                    ],
                    strict=True,
                )
            ),
        )
    ]
    for n in range(2, rows + 2):
        cells = [
            f'<c r="A{n}"><v>{n}</v></c>',
            f'<c r="B{n}" t="s"><v>2</v></c>',
            f'<c r="C{n}" t="s"><v>2</v></c>',
        ]
        cells += [
            f'<c r="E{n}"><v>{n % 40}</v></c>',
            f'<c r="F{n}" t="s"><v>3</v></c>',
            f'<c r="G{n}" s="1"><v>46000</v></c>',
        ]
        cells += [
            f'<c r="H{n}" t="s"><v>4</v></c>',
            f'<c r="I{n}" t="s"><v>5</v></c>',
            f'<c r="J{n}" t="s"><v>0</v></c>',
        ]
        cells += [f'<c r="K{n}" s="1"><v>46001</v></c>', f'<c r="L{n}" t="s"><v>1</v></c>']
        body.append(hostile.row(n, *cells))
    return hostile.workbook(path, hostile.sheet_xml(body), hostile.shared_strings(texts))


OPENPYXL = """
import io, sys, warnings
from openpyxl import load_workbook
warnings.simplefilter("ignore")
book = load_workbook(io.BytesIO(open(sys.argv[1], "rb").read()), read_only=True, data_only=True)
rows = sum(1 for _ in book.worksheets[0].iter_rows(values_only=True))
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(peak, f"{rows} rows (openpyxl read-only, the reader before)")
"""


def measure(path: Path, code: str = READ) -> tuple[float, int, str]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - began
    peak, outcome = done.stdout.strip().split(" ", 1)
    return seconds, int(peak) // 1024, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the legitimate workbook")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        floor = root / "floor.csv"
        floor.write_text("事项编号,状态\n1,\n", encoding="utf-8")
        files = {
            "floor: a two-row CSV": floor,
            f"legitimate: {args.rows:,} rows x 11 cells": legit(root / "legit.xlsx", args.rows),
            "150 MB of empty rows": hostile.empty_rows(root / "empty.xlsx"),
            "1.2 MB of empty rows (200,000)": hostile.workbook(
                root / "counted.xlsx",
                hostile.sheet_xml([hostile.HEADER, *hostile.repeated(b"<row/>", 1_200_000)]),
            ),
            "a 1 GiB shared string": hostile.string_bomb(root / "string.xlsx"),
            "dimension A1:XFD1048576": hostile.huge_dimension(root / "dimension.xlsx"),
            "130 rows of 16,000 empty cells": hostile.wide_rows(root / "cells.xlsx", 130, 16_000),
        }
        print(f"{'file':38} {'size':>10} {'seconds':>8} {'peak MiB':>9}  outcome")
        for name, path in files.items():
            seconds, peak, outcome = measure(path)
            size = path.stat().st_size
            print(f"{name:38} {size:>10,} {seconds:>8.2f} {peak:>9}  {outcome[:90]}")
            if name.startswith("legitimate"):
                seconds, peak, outcome = measure(path, OPENPYXL)
                print(f"{'  the same, openpyxl':38} {size:>10,} {seconds:>8.2f} {peak:>9}  {outcome[:90]}")


if __name__ == "__main__":
    main()
