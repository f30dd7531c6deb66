"""The options several commands share, defined once (``Annotated`` types for Typer).

Flags have an empty metavar, so ``--help`` shows ``--json`` and not ``--json <bool>``; options
that take a value name it (``--unit UNIT``). Help texts are Rich markup: a literal ``[x]`` is
written ``\\[x]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

REF_HELP = "An obligation id (12 or #12), an obligation key, or a TASK_ID with --unit."
UNIT_HELP = "A unit id, or its exact name from the units file."
PROGRAM_HELP = "WORKFLOW or WORKFLOW:YEAR, when several programs are running."
REGISTER_HELP = (
    "A register CSV for anchored duties, as NAME=FILE (repeatable); default: \\[registers] in config."
)
UNITS_HELP = "The units file (default: \\[definitions] units in config)."


def flag(name: str, help: str, *short: str) -> typer.models.OptionInfo:
    """A boolean flag, shown without a type."""
    return typer.Option(False, name, *short, help=help, metavar="")


Ref = Annotated[str, typer.Argument(metavar="REF", help=REF_HELP, show_default=False)]
Unit = Annotated[str | None, typer.Option("--unit", "-u", metavar="UNIT", help=UNIT_HELP)]
Program = Annotated[str | None, typer.Option("--program", "-p", metavar="WORKFLOW[:YEAR]", help=PROGRAM_HELP)]
Occurrence = Annotated[
    str | None,
    typer.Option("--occurrence", metavar="KEY", help="The occurrence key of a recurring duty."),
]
Units = Annotated[Path | None, typer.Option("--units", "-u", metavar="FILE", help=UNITS_HELP)]
Registers = Annotated[
    list[str] | None, typer.Option("--register", "-r", metavar="NAME=FILE", help=REGISTER_HELP)
]
Year = Annotated[str | None, typer.Option("--year", "-y", metavar="YYYY", help="The program year, YYYY.")]
Workflow = Annotated[
    str,
    typer.Argument(
        metavar="WORKFLOW",
        help="A workflow id from the definition folders, or a definition file.",
        show_default=False,
    ),
]


def json_flag(help: str = "One JSON object per line.") -> typer.models.OptionInfo:
    return flag("--json", help)
