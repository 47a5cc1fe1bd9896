"""Generate exercises/ from solutions/: the solutions are the single source of every exercise.

In each code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become
``# YOUR CODE HERE`` + ``raise NotImplementedError()`` (nbgrader's convention, same indentation), and
``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` blocks are removed. Outputs and execution counts
are cleared, a "generated, do not edit" note is put first, and nbgrader metadata marks the answer cells
(``solution``) and the check cells (tag ``check``: ``grade``, locked, 1 point).

    python tools/make_exercises.py            # write exercises/
    python tools/make_exercises.py --check    # exit 1 if exercises/ is out of date (used by the tests)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
NOTE_ID = "generated-note"

_BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*### END SOLUTION\s*$")
_BEGIN_HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS\s*$")
_END_HIDDEN = re.compile(r"^\s*### END HIDDEN TESTS\s*$")


class MarkerError(ValueError):
    """A solution cell whose markers do not pair up."""


def strip_solution(source: str, where: str = "cell") -> tuple[str, bool]:
    """Replace each solution block by a stub; drop hidden tests. Returns (new source, had a solution)."""
    out: list[str] = []
    in_solution = in_hidden = False
    had_solution = False
    for number, line in enumerate(source.splitlines(), start=1):
        if in_solution:
            if _BEGIN.match(line) or _BEGIN_HIDDEN.match(line):
                raise MarkerError(f"{where}, line {number}: nested marker inside a solution block")
            if _END.match(line):
                in_solution = False
            continue
        if in_hidden:
            if _END_HIDDEN.match(line):
                in_hidden = False
            continue
        begin = _BEGIN.match(line)
        if begin:
            indent = begin.group(1)
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
            in_solution = had_solution = True
        elif _BEGIN_HIDDEN.match(line):
            in_hidden = True
        elif _END.match(line) or _END_HIDDEN.match(line):
            raise MarkerError(f"{where}, line {number}: END marker without a BEGIN")
        else:
            out.append(line)
    if in_solution or in_hidden:
        raise MarkerError(f"{where}: a BEGIN marker is never closed")
    return "\n".join(out), had_solution


def make_exercise(solution_path: Path) -> nbformat.NotebookNode:
    """The exercise notebook generated from one solution notebook."""
    nb = nbformat.read(solution_path, as_version=4)
    exercise = copy.deepcopy(nb)
    exercise.metadata.pop("widgets", None)
    cells = []
    stem = solution_path.stem
    for index, cell in enumerate(exercise.cells):
        cell.metadata.pop("execution", None)
        grade_id = f"{stem}-{cell.get('id', index)}"
        if cell.cell_type == "code":
            cell.source, is_solution = strip_solution(cell.source, where=f"{solution_path.name} cell {index}")
            cell.outputs = []
            cell.execution_count = None
            tags = cell.metadata.get("tags", [])
            if is_solution:
                cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                                             "schema_version": 3, "solution": True, "task": False}
            elif "check" in tags:
                cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 1,
                                             "schema_version": 3, "solution": False, "task": False}
        cells.append(cell)
    note = nbformat.v4.new_markdown_cell(
        f"> **Generated from `solutions/{solution_path.name}` by `make exercises`; do not edit by hand.**\n"
        f"> Fill in each cell marked `# YOUR CODE HERE`, run it, then run the check cell below it.\n"
        f"> Every check fails until your answer is right, and says why.")
    note["id"] = NOTE_ID
    exercise.cells = [note, *cells]
    return exercise


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    args = parser.parse_args(argv)
    EXERCISES.mkdir(exist_ok=True)
    stale: list[str] = []
    expected_names = set()
    for solution in sorted(SOLUTIONS.glob("*.ipynb")):
        target = EXERCISES / solution.name
        expected_names.add(target.name)
        text = render(make_exercise(solution))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(target.name)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    orphans = sorted(p.name for p in EXERCISES.glob("*.ipynb") if p.name not in expected_names)
    for name in orphans:
        stale.append(f"{name} (no solution)")
        if not args.check:
            (EXERCISES / name).unlink()
    if args.check:
        if stale:
            print("exercises/ is out of date; run `make exercises`:", ", ".join(stale))
            return 1
        print("exercises/ is up to date")
        return 0
    print(f"wrote {len(stale)} exercise notebook(s)" + (": " + ", ".join(stale) if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
