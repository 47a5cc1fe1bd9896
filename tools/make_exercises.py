"""Generate exercises/ from solutions/: the solutions are the single source of every exercise.

``solutions/`` is a valid nbgrader source: answer cells carry nbgrader's ``solution`` metadata and hold the
answer between ``### BEGIN SOLUTION`` / ``### END SOLUTION``; check cells (tag ``check``) are graded,
locked, one-point cells and may hold ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``.
This script writes what ``nbgrader generate_assignment`` releases from that source, cell for cell: the same
stubs (``# YOUR CODE HERE`` + ``raise NotImplementedError()``, same indentation), hidden tests removed,
outputs cleared, answer cells undeletable, check cells neither editable nor deletable, and nbgrader's
checksums. ``tests/test_nbgrader.py`` runs the real nbgrader and compares.

    python tools/make_exercises.py            # write exercises/
    python tools/make_exercises.py --check    # exit 1 if exercises/ is out of date or a solution lacks its
                                              # nbgrader metadata (used by the tests)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")
# The nbgrader metadata a solution cell and a check cell carry in solutions/ (plus their grade_id).
SOLUTION_META = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}
CHECK_META = {"grade": True, "locked": True, "points": 1, "schema_version": 3, "solution": False, "task": False}


class MarkerError(ValueError):
    """A solution or hidden-test region whose markers do not pair up."""


class MetadataError(ValueError):
    """A solution notebook whose nbgrader metadata does not match its markers and tags."""


def _remove_regions(source: str, begin: str, end: str, stub: list[str] | None, where: str) -> tuple[str, bool]:
    """Drop each ``begin``..``end`` region (replaced by ``stub``, indented like ``begin``); as nbgrader does."""
    out: list[str] = []
    inside = found = False
    for number, line in enumerate(source.split("\n"), start=1):
        if begin in line:
            if inside:
                raise MarkerError(f"{where}, line {number}: nested {begin!r}")
            inside = found = True
            indent = re.match(r"\s*", line).group(0)  # type: ignore[union-attr]  # \s* always matches
            out += [indent + s for s in stub or []]
        elif end in line:
            if not inside:
                raise MarkerError(f"{where}, line {number}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {begin!r} is never closed")
    return "\n".join(out), found


def strip_solution(source: str, where: str = "cell") -> tuple[str, bool]:
    """Replace each solution region by the stub and drop hidden tests. Returns (new source, had a solution)."""
    source, had_solution = _remove_regions(source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB, where)
    source, _ = _remove_regions(source, BEGIN_HIDDEN, END_HIDDEN, None, where)
    return source, had_solution


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def metadata_problems(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """What is wrong with a solution notebook's nbgrader metadata (empty when it is a valid nbgrader source)."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index} ({cell.get('id', '?')})"
        meta = cell.get("metadata", {}).get("nbgrader")
        has_solution = BEGIN_SOLUTION in cell.source
        is_check = "check" in _tags(cell)
        if has_solution and is_check:
            problems.append(f"{where}: an answer cell cannot also be a check cell")
            continue
        if not has_solution and not is_check:
            if meta is not None:
                problems.append(f"{where}: nbgrader metadata on a cell that is neither an answer nor a check")
            if BEGIN_HIDDEN in cell.source:
                problems.append(f"{where}: hidden tests outside a check cell")
            continue
        expected = SOLUTION_META if has_solution else CHECK_META
        if meta is None:
            problems.append(f"{where}: no nbgrader metadata (expected {'solution' if has_solution else 'grade'} "
                            f"metadata: run `python tools/make_exercises.py --annotate`)")
            continue
        wrong = {key: meta.get(key) for key, value in expected.items() if meta.get(key) != value}
        if wrong:
            problems.append(f"{where}: nbgrader metadata {wrong} differs from {expected}")
        grade_id = meta.get("grade_id", "")
        if not GRADE_ID.match(str(grade_id)):
            problems.append(f"{where}: grade_id {grade_id!r} must be letters, digits, '-' or '_'")
        elif grade_id in seen:
            problems.append(f"{where}: grade_id {grade_id!r} is used twice")
        seen.add(str(grade_id))
    return problems


def annotate(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give answer and check cells that lack it their nbgrader metadata (grade_id = the cell id), in place."""
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            continue
        if BEGIN_SOLUTION in cell.source:
            cell.metadata["nbgrader"] = {**SOLUTION_META, "grade_id": cell.id}
        elif "check" in _tags(cell):
            cell.metadata["nbgrader"] = {**CHECK_META, "grade_id": cell.id}
    return nb


def nbgrader_checksum(cell: nbformat.NotebookNode) -> str:
    """The checksum nbgrader stores for a graded, answer or locked cell (nbgrader.utils.compute_checksum)."""
    meta = cell.metadata["nbgrader"]
    is_grade, is_solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    is_locked = False if is_solution else (True if is_grade else bool(meta.get("locked", False)))
    digest = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade), str(is_solution), str(is_locked), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if is_grade:
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def make_exercise(solution_path: Path) -> nbformat.NotebookNode:
    """The exercise notebook generated from one solution notebook: nbgrader's release of it."""
    nb = nbformat.read(solution_path, as_version=4)
    problems = metadata_problems(nb, solution_path.name)
    if problems:
        raise MetadataError("\n".join(problems))
    exercise = copy.deepcopy(nb)
    exercise.metadata.pop("widgets", None)  # widget state belongs to outputs, which are cleared
    for index, cell in enumerate(exercise.cells):
        where = f"{solution_path.name} cell {index}"
        meta = cell.metadata.get("nbgrader")
        if meta is not None:
            # nbgrader's LockCells: answer cells cannot be deleted; check cells can be neither edited nor deleted.
            cell.metadata["deletable"] = False
            if not meta["solution"]:
                cell.metadata["editable"] = False
        if cell.cell_type == "code":
            cell.source, _ = _remove_regions(cell.source, BEGIN_SOLUTION, END_SOLUTION, CODE_STUB, where)
            cell.source, _ = _remove_regions(cell.source, BEGIN_HIDDEN, END_HIDDEN, None, where)
            cell.outputs = []
            cell.execution_count = None
            for field in ("collapsed", "scrolled", "execution"):
                cell.metadata.pop(field, None)
        if meta is not None:
            meta["checksum"] = nbgrader_checksum(cell)
            meta["cell_type"] = cell.cell_type
    return exercise


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    parser.add_argument("--annotate", action="store_true",
                        help="add missing nbgrader metadata to the answer and check cells of solutions/")
    args = parser.parse_args(argv)
    if args.annotate:
        for solution in sorted(SOLUTIONS.glob("*.ipynb")):
            nb = nbformat.read(solution, as_version=4)
            before = nbformat.writes(nb)
            if nbformat.writes(annotate(nb)) != before:  # write only what changed
                nbformat.write(nb, solution)
                print(f"annotated solutions/{solution.name}")
    EXERCISES.mkdir(exist_ok=True)
    stale: list[str] = []
    expected_names = set()
    for solution in sorted(SOLUTIONS.glob("*.ipynb")):
        target = EXERCISES / solution.name
        expected_names.add(target.name)
        try:
            text = render(make_exercise(solution))
        except (MetadataError, MarkerError) as exc:
            print(f"solutions/{solution.name} is not a valid nbgrader source:\n{exc}", file=sys.stderr)
            return 1
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
