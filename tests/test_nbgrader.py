"""The real nbgrader round trip: solutions/ is the source, exercises/ is nbgrader's release, and autograde
gives each kind of learner exactly the points they earned.

Lesson 01 has hidden tests in its check cells; lesson 05 has none. Four learners hand in each lesson:
the one who answers everything, the one who hands the release back untouched, the one who answers only the
first exercise, and the one who rebinds every ``check_*`` name in the first answer cell instead of
answering. A fifth hands in lesson 01 with the checker module itself patched: only hidden tests stop that.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="nbgrader is in the `instructor` extra, which `make test` installs")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from nbgrader_course import LEARNERS, build_course, export_grades, hand_in, nbgrader  # noqa: E402

LESSONS = ["01_attention_cues", "05_self_cross_attention"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    course = tmp_path_factory.mktemp("course")
    releases = build_course(course, LESSONS)
    for lesson in LESSONS:
        # The patcher only hands in lesson 01, whose hidden tests are what stop it.
        learners = list(LEARNERS) if lesson == "01_attention_cues" else [x for x in LEARNERS if x != "patcher"]
        hand_in(course, lesson, learners, releases[lesson])
        nbgrader(course, "autograde", lesson, "--create", "--force")
    return {"releases": releases, "scores": export_grades(course)}


@pytest.mark.parametrize("lesson", LESSONS)
def test_exercises_are_nbgraders_release_cell_for_cell(graded, lesson):
    ours = nbformat.read(ROOT / "exercises" / f"{lesson}.ipynb", as_version=4)
    release = graded["releases"][lesson]
    assert len(ours.cells) == len(release.cells)
    for mine, theirs in zip(ours.cells, release.cells, strict=True):
        assert mine == theirs, f"{lesson}: cell {mine.get('id')} differs from nbgrader's release"
    assert ours.metadata == release.metadata


@pytest.mark.parametrize("lesson", LESSONS)
def test_solutions_get_full_marks(graded, lesson):
    score, max_score = graded["scores"][(lesson, "solver")]
    checks = sum(1 for c in graded["releases"][lesson].cells if c.metadata.get("nbgrader", {}).get("grade"))
    assert max_score == checks >= 2
    assert score == max_score


@pytest.mark.parametrize("lesson", LESSONS)
def test_untouched_release_gets_nothing(graded, lesson):
    assert graded["scores"][(lesson, "blank")][0] == 0


@pytest.mark.parametrize("lesson", LESSONS)
def test_one_answer_gets_exactly_its_point(graded, lesson):
    assert graded["scores"][(lesson, "first_only")][0] == 1


@pytest.mark.parametrize("lesson", LESSONS)
def test_rebinding_the_checkers_earns_nothing(graded, lesson):
    # Each check cell imports its checker itself, which undoes the rebinding (and nbgrader restores the
    # locked check cells before it grades).
    assert graded["scores"][(lesson, "rebinder")][0] == 0


def test_hidden_tests_catch_a_patched_checker_module(graded):
    # Patching course_lib.checks.<topic> fools every import of it; lesson 01's hidden tests test the answers
    # without the checkers, so the patch earns nothing there.
    assert graded["scores"][("01_attention_cues", "patcher")][0] == 0
