"""A scenario's report (scenarios/report.py): the markdown table a reader sees and the raw
figures, written side by side."""

from __future__ import annotations

import json
from pathlib import Path

from logact.scenarios.report import Report


def test_a_report_is_a_titled_table_with_notes_and_its_raw_figures(tmp_path: Path) -> None:
    rows = [{"run": "alone", "seconds": "2.00"}, {"run": "supervised", "seconds": "1.00"}]
    report = Report("Demo", rows, ["two runs.", "one note more."], {"speedup": 2.0, "at": tmp_path})
    assert report.lines() == [
        "# Demo",
        "",
        "two runs.",
        "one note more.",
        "",
        "| run | seconds |",
        "|---|---|",
        "| alone | 2.00 |",
        "| supervised | 1.00 |",
    ]
    report.write(tmp_path)
    assert (tmp_path / "summary.md").read_text() == "\n".join(report.lines()) + "\n"
    # Figures that are not JSON (paths, timestamps) are written as text.
    assert json.loads((tmp_path / "results.json").read_text()) == {
        "speedup": 2.0,
        "at": str(tmp_path),
    }
