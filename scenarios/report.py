"""What a scenario leaves behind: a table with notes (``summary.md``) and every figure measured
(``results.json``); for a demo, the checks it made."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Report:
    """``rows`` share their keys (the table's columns); ``doc`` is the raw results; ``problem``
    says why the runs did not show what the scenario measures (the command then fails)."""

    name: str
    rows: list[dict[str, Any]]
    notes: list[str]
    doc: dict[str, Any]
    problem: str | None = None

    def lines(self) -> list[str]:
        """The summary as markdown lines: title, notes, table."""
        columns = list(self.rows[0])
        lines = [f"# {self.name}", "", *self.notes, "", "| " + " | ".join(columns) + " |"]
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in self.rows]
        return lines

    def write(self, out: Path) -> None:
        """``results.json`` and ``summary.md`` in ``out``."""
        (out / "results.json").write_text(json.dumps(self.doc, indent=2, default=str))
        (out / "summary.md").write_text("\n".join(self.lines()) + "\n")


@dataclass(frozen=True, slots=True)
class Check:
    """One claim a demo checked; one that is not ``required`` is shown but does not fail it."""

    name: str
    passed: bool
    detail: str = ""
    required: bool = True


def all_passed(checks: Sequence[Check]) -> bool:
    """Whether every required check passed."""
    return all(check.passed for check in checks if check.required)
