"""The static website (`make site`, tools/build_site.py) builds from the stored outputs and is complete.

One build into a temporary folder (Sphinx with -W: a warning fails it), then: a page for every lesson and
every exercise, each lesson page with its stored figures, its "Run it yourself" line and its links to the
exercises and the glossary; a glossary with every term of every lesson's glossary, linked to the lesson
that introduces it; the landing page's table from the README; search; and no broken local link or image.
"""

from __future__ import annotations

import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_site  # noqa: E402

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# The themes still call Sphinx APIs that Sphinx 11 removes: their deprecation warnings are not the course's.
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")


class _Page(HTMLParser):
    """The links, images, element ids, table rows and text of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.rows: list[list[str]] = []
        self.row_links: list[list[str]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.ids.add(values["name"])
        if tag in ("a", "link") and "href" in values:
            self.links.append(values["href"])
            if tag == "a" and self.row_links:
                self.row_links[-1].append(values["href"])
        if tag in ("img", "script") and "src" in values:
            (self.images if tag == "img" else self.links).append(values["src"])
        if tag == "tr":
            self.rows.append([])
            self.row_links.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    # One Sphinx process: `make test` already runs two test workers on the 2-core machine.
    status = build_site.build(base / "html", base / "src", jobs="1")
    print(f"\nthe site built in {time.perf_counter() - start:.1f} s")
    assert status == 0, "Sphinx failed or warned (the build runs with -W): run `make site` to see why"
    return base / "html"


def _image_outputs(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(1 for cell in nb.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
               if any(mime in output.get("data", {}) for mime in IMAGE_MIMES))


def _glossary_rows(path: Path) -> list[tuple[str, str]]:
    """The lesson's own glossary table, read here independently of the build script."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "markdown" and re.search(r"^#+ Glossary", c.source, re.M))
    table = cell[re.search(r"^#+ Glossary.*$", cell, re.M).end():]  # type: ignore[union-attr]
    rows = [line for line in table.strip().splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows[2:]]
    return [(c[0], c[1]) for c in cells]


def test_every_lesson_and_exercise_has_a_page(site: Path):
    assert LESSONS and EXERCISES
    missing = [f"{folder}/{p.name}" for folder, notebooks in (("lessons", LESSONS), ("exercises", EXERCISES))
               for p in notebooks if not (site / folder / p.with_suffix(".html").name).exists()]
    assert not missing, f"no page for {missing}"
    assert (site / "index.html").exists() and (site / "glossary.html").exists()


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name[:2])
def test_lesson_page_has_its_figures_and_links(site: Path, lesson: Path):
    html_path = site / "lessons" / lesson.with_suffix(".html").name
    page = _parse(html_path)
    figures = [src for src in page.images if "_images/" in src]
    stored = _image_outputs(lesson)
    assert stored > 0, f"{lesson.name} stores no figure"
    # Explorers add the views their Output widgets stored, so a page may show more than the cells' own figures.
    assert len(figures) >= stored, f"{lesson.name}: {stored} stored figures, {len(figures)} on its page"
    text = " ".join(" ".join(page.text).split())
    assert "Run it yourself" in text and f"notebooks/{lesson.name}" in text
    assert "../glossary.html" in page.links
    exercise = ROOT / "exercises" / lesson.name
    if exercise.exists():
        assert f"../exercises/{lesson.with_suffix('.html').name}" in page.links
    source = html_path.read_text(encoding="utf-8")
    assert "widget-view+json" not in source and "unpkg.com" not in source, "a stored widget needs the internet"
    assert not re.search(r'<script[^>]+src="https?://', source), "a page loads a script from the internet"


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda p: p.name[:2])
def test_exercise_page_links_its_lesson(site: Path, exercise: Path):
    page = _parse(site / "exercises" / exercise.with_suffix(".html").name)
    assert f"../lessons/{exercise.with_suffix('.html').name}" in page.links
    assert "Run it yourself" in " ".join(page.text) and f"exercises/{exercise.name}" in " ".join(page.text)


def _plain(text: str) -> str:
    """``text`` with Sphinx's typographic quotes made plain again and its white space collapsed."""
    return " ".join(text.translate(str.maketrans("‘’“”", "''\"\"")).split())


def test_glossary_has_every_term_linked_to_the_lesson_that_introduces_it(site: Path):
    page = _parse(site / "glossary.html")
    rows = {_plain(row[0]).lower(): ([_plain(cell) for cell in row], links)
            for row, links in zip(page.rows[1:], page.row_links[1:], strict=True) if row}
    introduced: dict[str, str] = {}
    for lesson in LESSONS:
        terms = _glossary_rows(lesson)
        assert terms, f"{lesson.name} has an empty glossary"
        for english, chinese in terms:
            key = _plain(english.replace("`", "")).lower()
            introduced.setdefault(key, lesson.stem)
            assert key in rows, f"the glossary lacks {english!r} ({lesson.name})"
            assert _plain(chinese) in rows[key][0][1], f"the glossary lacks {chinese!r} ({lesson.name})"
    assert len(rows) == len(introduced), "the glossary lists a term that no lesson's glossary has"
    for key, stem in introduced.items():
        links = rows[key][1]
        assert links and links[0] == f"lessons/{stem}.html", f"{key!r} is introduced in {stem}, not {links[:1]}"


def test_landing_page_is_the_readme_course_table_with_links(site: Path):
    page = _parse(site / "index.html")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.splitlines()[0].lstrip("# ") in " ".join(page.text)
    for lesson in LESSONS:
        assert f"lessons/{lesson.with_suffix('.html').name}" in page.links, f"index does not link {lesson.name}"
    for exercise in EXERCISES:
        assert f"exercises/{exercise.with_suffix('.html').name}" in page.links
    assert "glossary.html" in page.links
    numbers = [row[0] for row in page.rows if row and re.fullmatch(r"\d\d", row[0])]
    assert numbers == sorted(p.name[:2] for p in LESSONS)


def test_search_works_offline(site: Path):
    assert (site / "search.html").exists()
    index = (site / "searchindex.js").read_text(encoding="utf-8")
    for lesson in LESSONS:
        assert f'"lessons/{lesson.stem}"' in index, f"{lesson.name} is not in the search index"
    assert '"glossary"' in index


def test_formulas_render_offline(site: Path):
    """Pages with math load the MathJax copied into the site, not a CDN's."""
    with_math = [p for p in sorted((site / "lessons").glob("*.html")) if 'class="math' in p.read_text(encoding="utf-8")]
    assert with_math, "no lesson page has a formula"
    for page in with_math:
        scripts = [src for src in _parse(page).links if "mathjax" in src.lower()]
        assert scripts and all(src.startswith("../_static/mathjax/") for src in scripts), (page.name, scripts)
    assert (site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_no_broken_local_links_or_images(site: Path):
    # _static/ holds the themes' Jinja macro files (named .html), not pages.
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    assert len(pages) >= len(LESSONS) + len(EXERCISES) + 2
    parsed = {path: _parse(path) for path in pages}
    broken = []
    for path, page in parsed.items():
        for target in page.links + page.images:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or target == "#":  # http(s), mailto, data: are not local files
                continue
            if not parts.path:
                if parts.fragment and parts.fragment not in page.ids:
                    broken.append(f"{path.relative_to(site)} -> {target}")
                continue
            resolved = (path.parent / unquote(parts.path)).resolve()
            if not resolved.exists():
                broken.append(f"{path.relative_to(site)} -> {target}")
            elif parts.fragment and resolved.suffix == ".html":
                ids = parsed[resolved].ids if resolved in parsed else _parse(resolved).ids
                if parts.fragment not in ids:
                    broken.append(f"{path.relative_to(site)} -> {target} (no such anchor)")
    assert not broken, f"{len(broken)} broken local links, e.g. {broken[:10]}"


# ---- the build script's pieces, on small inputs ----------------------------------------------------------

def _notebook(*markdown: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(m) for m in markdown])


def test_glossary_parser_reads_the_table_and_refuses_a_lesson_without_one():
    table = "| English | 中文 |\n|---|---|\n| query | 查询 |\n| a \\| b | 甲 |"
    nb = _notebook("# 99 · Test", f"## Glossary\n\n{table}\n\nMore.")
    assert build_site.glossary_terms(nb, ROOT / "notebooks" / "99_test.ipynb") == [("query", "查询"), ("a \\| b", "甲")]
    with pytest.raises(ValueError, match="no glossary table"):
        build_site.glossary_terms(_notebook("# 99 · Test", "## Summary"), ROOT / "notebooks" / "99_test.ipynb")


def test_a_term_belongs_to_the_first_lesson_that_lists_it():
    first = build_site.Lesson("01", ROOT / "notebooks" / "01_a.ipynb", "01 · A", None, [("Query", "查询")])
    later = build_site.Lesson("05", ROOT / "notebooks" / "05_b.ipynb", "05 · B", None,
                              [("query", "查询向量"), ("key", "键")])
    terms = {t.english.lower(): t for t in build_site.collect_terms([first, later])}
    assert terms["query"].introduced_in is first and terms["query"].also_in == [later]
    assert terms["query"].other_chinese == [("查询向量", later)]
    assert terms["key"].introduced_in is later


def test_course_table_refuses_a_readme_that_lacks_a_lesson():
    lessons = [build_site.Lesson(n, ROOT / "notebooks" / f"{n}_x.ipynb", n, None) for n in ("00", "01")]
    readme = "# T\n\nintro\n\n## The course\n\n| NN | lesson |\n|---|---|\n| 00 | Setup |\n\n## Next\n"
    with pytest.raises(ValueError, match=r"lacks lessons \['01'\]"):
        build_site.course_table(readme, lessons)
    assert "[Setup](lessons/00_x.ipynb)" in build_site.course_table(readme, lessons[:1])


def test_stored_widgets_become_static_outputs():
    image = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    state = {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_p", "IPY_MODEL_f", "IPY_MODEL_s"]}},
        "p": {"model_name": "HTMLModel", "state": {"value": "training:\u2007100%"}},
        "f": {"model_name": "FloatProgressModel", "state": {"value": 40.0, "max": 40.0}},
        "s": {"model_name": "HTMLModel", "state": {"value": "\u200740/40\u2007[00:01&lt;00:00]"}},
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_out"]}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [image]}},
    }
    cell = nbformat.v4.new_code_cell("x", outputs=[
        nbformat.v4.new_output("display_data", data={build_site.WIDGET_VIEW: {"model_id": mid}, "text/plain": "w"})
        for mid in ("bar", "box", "gone")])
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {build_site.WIDGET_STATE: {"state": state}}})
    assert build_site.static_widgets(nb, "run `it` <now>") == 3
    outputs = nb.cells[0].outputs
    assert outputs[0].text == "training: 100%|██████████| 40/40 [00:01<00:00]\n"
    assert "Interactive explorer" in outputs[1].data["text/html"] and outputs[2].data["image/png"] == "iVBORw0KGgo="
    assert "run <code>it</code> &lt;now&gt; to use it live" in outputs[1].data["text/html"]
    assert "Interactive explorer" in outputs[3].data["text/html"] and len(outputs) == 4
    assert "widgets" not in nb.metadata
