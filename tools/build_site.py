"""Build the course's static website from the stored outputs: nothing executes.

    python tools/build_site.py                       # build/site/index.html (what `make site` runs)
    python tools/build_site.py --out DIR --stage DIR  # elsewhere (tests/test_site.py builds into a tmp dir)

The pages are generated into a staging folder (``--stage``, default build/site-src/) and Sphinx (myst-nb,
sphinx-book-theme, site/conf.py) turns them into HTML:

- ``index.md``: the README's title and introduction, and its "## The course" table with each lesson linked
  to its page and its exercises (the README is the one source of the course table; nothing is copied by hand);
- ``lessons/NN_slug.ipynb``: copies of notebooks/, with a "Run it yourself" note under the first cell
  (how to open the notebook, its exercises, the glossary) and a link to the course glossary under the
  lesson's own glossary;
- ``exercises/NN_slug.ipynb``: copies of exercises/, with their own "Run it yourself" note and the lesson;
- ``glossary.md``: every key term of the course, English / 中文, parsed from the glossary table at the end of
  each lesson, each linked to the lesson that introduces it (the first lesson whose glossary lists it).

Stored widgets need a kernel or JavaScript from the internet; the copies show them statically instead: a
progress bar as its final line of text, an explorer as the views it stored (its Output widgets), under a
note that says how to use it live. MathJax is copied into the site (``_static/mathjax/``), so formulas render
without the internet too. Sphinx runs with -W: a warning (a broken cross-reference, a bad table) fails the
build. myst-nb writes the images it extracts to ``jupyter_execute/`` beside ``--out`` (build/jupyter_execute/).
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SITE_SOURCE = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = ROOT / "exercises"
README = ROOT / "README.md"

LESSON_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")
GLOSSARY_HEADING = re.compile(r"^#{1,6}\s+Glossary\b.*$", re.M | re.I)
TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
SEPARATOR_ROW = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
COURSE_ROW = re.compile(r"^\|\s*(\d\d)\s*\|")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
RUN_NOTE_CLASS = "course-run-it"
# The parts of MathJax 3 (from the django-static-mathjax wheel, plain static files) that the pages need, so
# that formulas render without the internet: the combined TeX component, its fonts, TeX extensions it loads.
MATHJAX_PARTS = ("tex-mml-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")


@dataclass
class Lesson:
    number: str
    path: Path
    title: str
    exercise: Path | None
    glossary: list[tuple[str, str]] = field(default_factory=list)

    @property
    def page(self) -> str:
        return f"lessons/{self.path.name}"


@dataclass
class Term:
    english: str
    chinese: str
    introduced_in: Lesson
    also_in: list[Lesson] = field(default_factory=list)
    other_chinese: list[tuple[str, Lesson]] = field(default_factory=list)


def _split_row(line: str) -> list[str]:
    """The cells of one markdown table row (``\\|`` is a literal bar inside a cell)."""
    match = TABLE_ROW.match(line)
    if match is None:
        raise ValueError(f"not a table row: {line!r}")
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(1))]


def notebook_title(nb: nbformat.NotebookNode, path: Path) -> str:
    """The text of the notebook's first ``#`` heading (its page title)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+?)\s*$", cell.source, re.M)
            if match:
                return match.group(1)
    raise ValueError(f"{path.relative_to(ROOT)} has no '# title' heading")


def glossary_terms(nb: nbformat.NotebookNode, path: Path) -> list[tuple[str, str]]:
    """(English, 中文) pairs of the table under the lesson's "Glossary" heading."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        heading = GLOSSARY_HEADING.search(cell.source)
        if heading is None:
            continue
        rows: list[list[str]] = []
        for line in cell.source[heading.end():].strip("\n").splitlines():
            if not line.strip():
                if rows:
                    break
                continue
            if not TABLE_ROW.match(line):
                break
            if not SEPARATOR_ROW.match(line):
                rows.append(_split_row(line))
        terms = [(row[0], row[1]) for row in rows[1:] if len(row) >= 2 and row[0] and row[1]]
        if terms:
            return terms
    raise ValueError(f"{path.relative_to(ROOT)} has no glossary table (a '## Glossary' heading, then "
                     "| English | 中文 | rows): every lesson ends with one")


def find_lessons() -> list[Lesson]:
    lessons = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if not LESSON_NAME.match(path.name):
            continue
        nb = nbformat.read(path, as_version=4)
        exercise = EXERCISES / path.name
        lessons.append(Lesson(number=path.name[:2], path=path, title=notebook_title(nb, path),
                              exercise=exercise if exercise.exists() else None,
                              glossary=glossary_terms(nb, path)))
    if not lessons:
        raise ValueError(f"no lessons in {NOTEBOOKS}")
    return lessons


def _term_key(english: str) -> str:
    return re.sub(r"\s+", " ", english).strip().lower()


def collect_terms(lessons: list[Lesson]) -> list[Term]:
    """Every glossary term once, with the first lesson that lists it; sorted by its English name."""
    terms: dict[str, Term] = {}
    for lesson in lessons:
        for english, chinese in lesson.glossary:
            key = _term_key(english)
            term = terms.get(key)
            if term is None:
                terms[key] = Term(english, chinese, lesson)
                continue
            if lesson is not term.introduced_in and lesson not in term.also_in:
                term.also_in.append(lesson)
            if chinese != term.chinese and all(chinese != c for c, _ in term.other_chinese):
                term.other_chinese.append((chinese, lesson))
    return sorted(terms.values(), key=lambda t: (re.sub(r"^[^a-z0-9]+", "", _term_key(t.english)), t.english))


# ---- stored widgets, shown statically -------------------------------------------------------------------

def _model(state: dict, reference: str) -> dict | None:
    model = state.get(reference.removeprefix("IPY_MODEL_"))
    return model if isinstance(model, dict) else None


def _progress_line(model: dict, state: dict) -> str | None:
    """tqdm.auto's bar (HBox of HTML, FloatProgress, HTML) as the text line tqdm prints in a terminal."""
    children = [_model(state, ref) for ref in model.get("state", {}).get("children", [])]
    names = [child.get("model_name") if child else None for child in children]
    if model.get("model_name") != "HBoxModel" or names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    prefix, bar, suffix = (child["state"] for child in children if child)
    done = bar.get("value", 0) / bar["max"] if bar.get("max") else 0.0
    cells = round(10 * min(max(done, 0.0), 1.0))
    text = f"{prefix.get('value', '')}|{'█' * cells}{' ' * (10 - cells)}|{suffix.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def _stored_outputs(model: dict, state: dict, seen: set[int]) -> list[dict]:
    """The outputs stored in the Output widgets inside ``model``, in the order of its children."""
    if id(model) in seen:
        return []
    seen.add(id(model))
    model_state = model.get("state", {})
    if model.get("model_name") == "OutputModel":
        return list(model_state.get("outputs", []))
    outputs: list[dict] = []
    for reference in model_state.get("children", []):
        child = _model(state, reference) if isinstance(reference, str) else None
        if child is not None:
            outputs += _stored_outputs(child, state, seen)
    return outputs


def _html_output(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={"text/html": text})


def static_widgets(nb: nbformat.NotebookNode, run_line: str) -> int:
    """Replace widget outputs of ``nb`` (in place) by what they stored; drop the widget state. Returns how many.

    ``run_line`` (markdown, `code` allowed) says how to use an explorer live.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(output)
                continue
            replaced += 1
            model = _model(state, view.get("model_id", ""))
            line = _progress_line(model, state) if model else None
            if line is not None:
                outputs.append(nbformat.v4.new_output("stream", name="stderr", text=line + "\n"))
                continue
            run_html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(run_line, quote=False))
            outputs.append(_html_output(
                f'<p class="{RUN_NOTE_CLASS}"><strong>Interactive explorer</strong>: the view it stored when the '
                f"lesson ran is below; {run_html} to use it live.</p>"))
            outputs += [nbformat.from_dict(o) for o in (_stored_outputs(model, state, set()) if model else [])]
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)
    return replaced


# ---- the pages ------------------------------------------------------------------------------------------

def run_note(text: str) -> str:
    """The "Run it yourself" admonition (MyST) around ``text``."""
    return f"```{{admonition}} Run it yourself\n:class: tip {RUN_NOTE_CLASS}\n\n{text}\n```"


def _note_cell(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(run_note(text))


def lesson_page(lesson: Lesson) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nbformat.read(lesson.path, as_version=4))
    run_line = f"`make lab`, then open `notebooks/{lesson.path.name}`"
    static_widgets(nb, f"run the notebook (`make lab`, then open `notebooks/{lesson.path.name}`)")
    parts = [f"{run_line} (this page shows the outputs stored when the lesson last ran; nothing here runs)."]
    if lesson.exercise is not None:
        parts.append(f"**Exercises**: [{lesson.number} · exercises](../exercises/{lesson.exercise.name}), "
                     f"in `exercises/{lesson.exercise.name}`.")
    parts.append("**Key terms** in English and 中文: [the course glossary](../glossary.md).")
    nb.cells.insert(1, _note_cell(" ".join(parts)))
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and GLOSSARY_HEADING.search(cell.source):
            nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(
                "Every key term of the course, with the lesson that introduces it: "
                "[the course glossary](../glossary.md)."))
            break
    return nb


def exercise_page(lesson: Lesson) -> nbformat.NotebookNode:
    assert lesson.exercise is not None
    nb = copy.deepcopy(nbformat.read(lesson.exercise, as_version=4))
    name = lesson.exercise.name
    static_widgets(nb, f"run the notebook (`make lab`, then open `exercises/{name}`)")
    nb.cells.insert(1, _note_cell(
        f"`make lab`, then open `exercises/{name}`: replace each `# YOUR CODE HERE` and run the check cell "
        f"below it, which says at once whether the answer is right and, when it is not, why. "
        f"**The lesson**: [{lesson.title}](../lessons/{lesson.path.name}). "
        f"The answers are in `solutions/{name}`."))
    return nb


def _readme_section(readme: str, heading: str) -> str:
    start = readme.index(heading)
    end = readme.find("\n## ", start + len(heading))
    return readme[start + len(heading): end if end != -1 else len(readme)].strip("\n")


def course_table(readme: str, lessons: list[Lesson]) -> str:
    """The README's "## The course" section, each lesson linked to its page and its exercises."""
    by_number = {lesson.number: lesson for lesson in lessons}
    section = _readme_section(readme, "## The course")
    lines, header_done = [], False
    for line in section.splitlines():
        if not TABLE_ROW.match(line):
            lines.append(line)
            continue
        if SEPARATOR_ROW.match(line):
            lines.append(line.rstrip() + "---|")
            continue
        cells = _split_row(line)
        if not header_done:
            header_done = True
            lines.append(line.rstrip() + " exercises |")
            continue
        lesson = by_number.get(cells[0])
        if lesson is not None:
            cells[1] = f"[{cells[1]}]({lesson.page})"
            exercises = f"[exercises](exercises/{lesson.exercise.name})" if lesson.exercise else "none"
        else:
            exercises = "none"
        lines.append("| " + " | ".join(cells + [exercises]) + " |")
    missing = set(by_number) - {m.group(1) for line in lines if (m := COURSE_ROW.match(line))}
    if missing:
        raise ValueError(f"README's course table lacks lessons {sorted(missing)}")
    return "\n".join(lines)


def _toctree(caption: str, entries: list[str]) -> str:
    return "\n".join(["```{toctree}", f":caption: {caption}", ":maxdepth: 1", ":hidden:", "", *entries, "```"])


def index_page(lessons: list[Lesson]) -> str:
    readme = README.read_text(encoding="utf-8")
    title = re.search(r"^#\s+(.+?)\s*$", readme, re.M)
    if title is None:
        raise ValueError("README.md has no '# title'")
    intro = readme[title.end(): readme.index("\n## ")].strip("\n")
    return "\n\n".join([
        f"# {title.group(1)}",
        intro,
        run_note("Clone the course, then `make lab`: it creates the environment and opens lesson 00 in "
                 "JupyterLab (`make test` runs every check CI runs). These pages show the outputs stored in "
                 "the notebooks; nothing here runs."),
        "## The course",
        course_table(readme, lessons),
        "Every key term in English and 中文, with the lesson that introduces it: [the glossary](glossary.md).",
        _toctree("Lessons", [f"lessons/{lesson.path.stem}" for lesson in lessons]),
        _toctree("Exercises", [f"exercises/{lesson.exercise.stem}" for lesson in lessons if lesson.exercise]),
        _toctree("Reference", ["glossary"]),
    ]) + "\n"


def glossary_page(terms: list[Term]) -> str:
    def link(lesson: Lesson, text: str) -> str:
        return f"[{text}]({lesson.page})"

    rows = ["| English | 中文 | introduced in | also in |", "|---|---|---|---|"]
    for term in terms:
        chinese = term.chinese + "".join(f" (lesson {lesson.number}: {other})" for other, lesson in term.other_chinese)
        also = ", ".join(link(lesson, lesson.number) for lesson in term.also_in) or " "
        rows.append(f"| {term.english} | {chinese} | {link(term.introduced_in, term.introduced_in.title)} | {also} |")
    return "\n\n".join([
        "# Glossary · 术语表",
        f"The {len(terms)} key terms of the course in English and 中文, collected when the site is built from "
        "the glossary at the end of each lesson. Each links to the lesson that introduces it (the first "
        "lesson whose glossary lists it) and to the later lessons that list it again.",
        "\n".join(rows),
    ]) + "\n"


def copy_mathjax(static_dir: Path) -> None:
    """A local MathJax in ``static_dir``/mathjax (site/conf.py's mathjax_path points there)."""
    try:
        import mathjax  # django-static-mathjax: MathJax's files under mathjax/static/mathjax/
    except ImportError as error:
        raise ValueError("MathJax is missing: install the `site` extra (make venv)") from error
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    for part in MATHJAX_PARTS:
        source, target = es5 / part, static_dir / "mathjax" / part
        if not source.exists():
            raise ValueError(f"MathJax has no {part} in {es5}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def stage(stage_dir: Path) -> tuple[list[Lesson], list[Term]]:
    """Write the site's sources (conf.py, static files, generated pages) into ``stage_dir``."""
    lessons = find_lessons()
    terms = collect_terms(lessons)
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(SITE_SOURCE, stage_dir, ignore=shutil.ignore_patterns("__pycache__", "README.md"))
    copy_mathjax(stage_dir / "_static")
    (stage_dir / "lessons").mkdir()
    (stage_dir / "exercises").mkdir()
    for lesson in lessons:
        nbformat.write(lesson_page(lesson), stage_dir / lesson.page)
        if lesson.exercise is not None:
            nbformat.write(exercise_page(lesson), stage_dir / "exercises" / lesson.exercise.name)
    (stage_dir / "index.md").write_text(index_page(lessons), encoding="utf-8")
    (stage_dir / "glossary.md").write_text(glossary_page(terms), encoding="utf-8")
    return lessons, terms


def build(out: Path, stage_dir: Path, jobs: str = "auto", quiet: bool = True) -> int:
    """Stage the sources and run Sphinx (HTML, warnings are errors) into ``out``; Sphinx's exit status."""
    from sphinx.cmd.build import build_main

    stage(stage_dir)
    if out.exists():
        shutil.rmtree(out)
    args = ["-b", "html", "-W", "--keep-going", "-j", jobs, "-d", str(stage_dir / ".doctrees")]
    args += ["-q"] if quiet else []
    return build_main([*args, str(stage_dir), str(out)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="where the HTML goes")
    parser.add_argument("--stage", type=Path, default=ROOT / "build" / "site-src",
                        help="where the generated sources go (replaced)")
    parser.add_argument("-j", "--jobs", default=os.environ.get("SITE_JOBS", "auto"),
                        help="Sphinx's parallel jobs (default auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="Sphinx's progress messages")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        status = build(args.out.resolve(), args.stage.resolve(), jobs=args.jobs, quiet=not args.verbose)
    except ValueError as error:  # a lesson or the README that the site cannot be built from
        print(f"the site was not built: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    if status != 0:
        print(f"the site did not build (Sphinx exit status {status}; warnings count as errors)", file=sys.stderr)
        return status
    index = args.out.resolve() / "index.html"
    print(f"site built in {seconds:.0f} s: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
