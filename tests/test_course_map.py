"""The course map in lesson 00 and the README's table list exactly the lessons that exist."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXISTING = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
ROW = re.compile(r"^\|\s*(\d\d)\s*\|", re.M)


def _lesson_00_map() -> str:
    nb = nbformat.read(ROOT / "notebooks" / "00_setup_and_tour.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "markdown" and "course map" in c.source.lower())


def test_lesson_00_map_lists_exactly_the_existing_lessons():
    listed = set(ROW.findall(_lesson_00_map()))
    extra, missing = sorted(listed - EXISTING), sorted(EXISTING - listed)
    assert listed == EXISTING, f"map lists {extra}, which do not exist; lacks {missing}"


def test_readme_table_lists_exactly_the_existing_lessons():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## The course"):]
    table = table[: table.index("\n## ", 3)]
    listed = set(ROW.findall(table))
    extra, missing = sorted(listed - EXISTING), sorted(EXISTING - listed)
    assert listed == EXISTING, f"README lists {extra}, which do not exist; lacks {missing}"


def test_every_lesson_has_a_measured_run_time():
    timings = (ROOT / "docs" / "lesson_timings.csv").read_text()
    missing = [nn for nn in sorted(EXISTING) if f"notebooks/{nn}_" not in timings]
    assert not missing, f"docs/lesson_timings.csv has no row for lessons {missing}: run make execute"


def test_every_measured_notebook_is_within_the_budget():
    """The course's budget, 120 s and 2 GiB on one thread of the 2-core machine, as `make execute` measured it."""
    import csv

    with (ROOT / "docs" / "lesson_timings.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    over = [(r["notebook"], r["seconds"], r["peak_mib"]) for r in rows
            if float(r["seconds"]) > 120 or float(r["peak_mib"]) > 2048]
    assert not over, f"over 120 s or 2 GiB: {over}"
