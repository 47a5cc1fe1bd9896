"""Build an nbgrader course folder from solutions/, hand in made-up submissions, autograde and export grades.

For instructors, a dry run of the whole round trip (docs/INSTRUCTORS.md); for the tests, the same steps
(tests/test_nbgrader.py). Needs the `instructor` extra (nbgrader).

    python tools/nbgrader_course.py /tmp/course                 # every lesson, one learner who solves all
    python tools/nbgrader_course.py /tmp/course --lessons 01_attention_cues 05_self_cross_attention

It prints the seconds `nbgrader autograde` took per lesson for that learner and writes grades.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """c = get_config()
c.CourseDirectory.course_id = "attention-course"
c.CourseDirectory.root = "."
c.ExecutePreprocessor.timeout = 300
"""
LEARNERS = ("solver", "blank", "first_only", "rebinder", "patcher")


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run nbgrader in ``course``; nbgrader calls `alembic` from PATH, so this venv's bin goes first."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run([str(Path(bin_dir) / "nbgrader"), *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def answer_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]


def make_submission(learner: str, release: nbformat.NotebookNode,
                    source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What a learner hands in, made from the release as a learner would edit it.

    solver: every answer; blank: nothing; first_only: the first answer only; rebinder: no answer, but the
    first answer cell rebinds every ``check_*`` name to a checker that always passes; patcher: the same, but
    it patches the checker module itself, so that the check cells' own imports get the fake.
    """
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
    nb = nbformat.from_dict(release)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in answer_cells(source)}
    cells = answer_cells(nb)
    if learner == "solver":
        for cell in cells:
            cell.source = answers[cell.metadata.nbgrader.grade_id]
    elif learner == "first_only":
        cells[0].source = answers[cells[0].metadata.nbgrader.grade_id]
    elif learner in ("rebinder", "patcher"):
        names = sorted({n for c in nb.cells for n in re.findall(r"\b(check_\w+)\(", c.source)})
        fake = ["def _fake_check(*args, **kwargs):", "    print('✅ all checks passed')", ""]
        if learner == "rebinder":
            fake += [f"{name} = _fake_check" for name in names]
        else:
            modules = sorted({m for c in nb.cells for m in re.findall(r"from (course_lib\.checks\.\w+) import",
                                                                       c.source)})
            fake.append("import importlib")
            fake += [f"for _name in {names!r}:\n    setattr(importlib.import_module({m!r}), _name, _fake_check)"
                     for m in modules]
        cells[0].source = "\n".join(fake)
    return nb


def build_course(course: Path, lessons: list[str]) -> dict[str, nbformat.NotebookNode]:
    """nbgrader_config.py, source/<lesson>/ from solutions/, and the release; returns the released notebooks."""
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    releases = {}
    for lesson in lessons:
        (course / "source" / lesson).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "solutions" / f"{lesson}.ipynb", course / "source" / lesson)
        nbgrader(course, "generate_assignment", lesson, "--force")
        releases[lesson] = nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", as_version=4)
    return releases


def hand_in(course: Path, lesson: str, learners: list[str], release: nbformat.NotebookNode) -> None:
    """Put each learner's submission where nbgrader's autograde looks: submitted/<learner>/<lesson>/."""
    source = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", as_version=4)
    for learner in learners:
        folder = course / "submitted" / learner / lesson
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(make_submission(learner, release, source), folder / f"{lesson}.ipynb")


def export_grades(course: Path) -> dict[tuple[str, str], tuple[float, float]]:
    """`nbgrader export` to grades.csv; returns {(lesson, learner): (score, max_score)}."""
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    with (course / "grades.csv").open() as f:
        return {(row["assignment"], row["student_id"]): (float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course", type=Path, help="an empty folder for the course")
    parser.add_argument("--lessons", nargs="*", default=[p.stem for p in sorted((ROOT / "solutions").glob("*.ipynb"))])
    args = parser.parse_args(argv)
    releases = build_course(args.course, args.lessons)
    seconds = {}
    for lesson in args.lessons:
        hand_in(args.course, lesson, ["solver"], releases[lesson])
        start = time.perf_counter()
        nbgrader(args.course, "autograde", lesson, "--create", "--force")
        seconds[lesson] = time.perf_counter() - start
    grades = export_grades(args.course)
    print(f"{'lesson':40s} {'autograde s':>11s} {'score':>9s}")
    for lesson in args.lessons:
        score, max_score = grades[(lesson, "solver")]
        print(f"{lesson:40s} {seconds[lesson]:11.1f} {score:4.0f}/{max_score:<4.0f}")
    print(f"grades: {args.course / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
