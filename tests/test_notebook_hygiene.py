"""Every lesson and solution follows the course conventions (cheap checks on the stored notebooks)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_name_kernel_and_valid_notebook(path):
    assert NAME.match(path.name), f"{path.name}: lessons are named NN_slug.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    # ipykernel's own kernelspec: JupyterLab then has nothing to rewrite when the notebook is opened.
    assert nb.metadata.get("kernelspec") == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                             "name": "python3"}, f"{path.name}: kernelspec is not ipykernel's own"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_outputs_stored_clean_and_local_paths_hidden(path):
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    assert code and all(c.execution_count is not None for c in code), f"{path.name}: run `make execute`"
    outputs = [o for c in code for o in c.outputs]
    for cell in code:
        for out in cell.outputs:
            if out.output_type == "error":
                assert "raises-exception" in _tags(cell), f"{path.name}: stored error in an untagged cell"
    text = json.dumps(outputs)
    assert not re.search(r"/(root|home|work|tmp/ipykernel)/", text), f"{path.name}: an output shows a local path"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_template(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    for heading in ("What you will learn", "Prerequisites", "Time to run"):
        assert heading.lower() in first.source.lower(), f"{path.name}: first cell lacks '{heading}'"
    code = "\n".join(c.source for c in _code(nb))
    if not path.name.startswith("00_"):
        assert "set_seed(" in code and "get_device(" in code, f"{path.name}: setup cell lacks set_seed/get_device"
    assert re.search(r"\bassert\b|check_", code), f"{path.name}: no check cells"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert "further reading" in markdown, f"{path.name}: no further reading"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_pictures(path):
    nb = nbformat.read(path, as_version=4)
    images = sum("image/png" in o.get("data", {}) for c in _code(nb) for o in c.outputs)
    assert images >= (1 if path.name.startswith("00_") else 3), f"{path.name}: only {images} pictures"


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ignored_outputs_are_followed_by_a_check(path):
    nb = nbformat.read(path, as_version=4)
    code = _code(nb)
    for i, cell in enumerate(code):
        if "nbval-ignore-output" in _tags(cell):
            window = "\n".join(c.source for c in code[i: i + 3])
            assert re.search(r"\bassert\b|check_|\.check\(|checks\.", window), (
                f"{path.name}: an nbval-ignore-output cell is not followed by a check:\n{cell.source[:200]}")


def test_exercises_match_solutions_one_to_one():
    assert [p.name for p in EXERCISES] == [p.name for p in SOLUTIONS]


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_stored_explorers_have_their_state_and_starting_picture(path):
    """A trusted page draws each stored explorer from the saved widget state: every view must find its model
    (else JupyterLab shows "model not found"), and the explorer's output must hold its starting picture."""
    nb = nbformat.read(path, as_version=4)
    views = [o["data"][WIDGET_VIEW]["model_id"] for c in _code(nb) for o in c.outputs
             if WIDGET_VIEW in o.get("data", {})]
    if not views:
        return
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    missing = [m for m in views if m not in state]
    assert not missing, f"{path.name}: stored explorers without their widget state: {missing}"
    outputs = [model["state"].get("outputs", []) for model in state.values() if model["model_name"] == "OutputModel"]
    if outputs:  # an explorer (tqdm bars have no Output widget)
        assert any("image/png" in o.get("data", {}) for out in outputs for o in out), (
            f"{path.name}: no stored explorer shows a starting picture")
    for model in state.values():  # progress bars are stored finished, as the run left them
        if model["model_name"] == "FloatProgressModel" and model["state"].get("bar_style") != "danger":
            assert model["state"].get("value") == model["state"].get("max"), f"{path.name}: an unfinished bar"
