"""The static website in the browser: one lesson page and the glossary, opened from the file system, offline.

The site is the one `make site` wrote (build/site/); where it is missing, the test builds it into build/browser/.
It checks what a reader sees and a link checker cannot: every figure decodes, every formula is typeset by
the local MathJax, the Chinese terms of the glossary are drawn with a CJK font (not as empty boxes), and it
saves a screenshot of each page to build/browser/site/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser" / "site"


@pytest.fixture(scope="module")
def site_root() -> Path:
    built = ROOT / "build" / "site"
    if (built / "index.html").exists():
        return built
    sys.path.insert(0, str(ROOT / "tools"))
    from build_site import build

    out = ROOT / "build" / "browser" / "site-html"
    assert build(out, ROOT / "build" / "browser" / "site-src", jobs="1") == 0, "the site did not build"
    return out


def _lesson_page(site: Path, number: str) -> Path:
    pages = sorted((site / "lessons").glob(f"{number}_*.html"))
    assert pages, f"no page for lesson {number} under {site / 'lessons'}"
    return pages[0]


@pytest.fixture
def site_page(browser, site_root: Path):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page, site_root
    context.close()


def test_lesson_08_page_renders_figures_and_formulas(site_page) -> None:
    page, site = site_page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(_lesson_page(site, "08").as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("""() => [...document.querySelectorAll('main img')].map(
        i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))""")
    assert len(images) >= 3, f"lesson 08's page shows {len(images)} figures"
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"figures that did not load: {broken}"
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=60_000)
    raw = page.evaluate("() => document.querySelector('main').innerText.includes('\\\\frac')")
    assert not raw, "a formula is still shown as LaTeX source: MathJax did not typeset it"
    assert "Run it yourself" in page.inner_text("main")
    page.screenshot(path=str(SHOTS / "lesson_08.png"), full_page=False)


def test_glossary_draws_the_chinese_terms(site_page) -> None:
    page, site = site_page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto((site / "glossary.html").as_uri())
    page.wait_for_load_state("load")
    text = page.inner_text("main")
    assert "注意力" in text, "the glossary page has no Chinese term"
    # Without a CJK font every Chinese character is drawn as the same "missing glyph" box: draw two different
    # characters in the page's font on a canvas and compare their pixels.
    same = page.evaluate("""() => {
        const font = getComputedStyle(document.querySelector('main')).fontFamily;
        const draw = (ch) => { const c = document.createElement('canvas'); c.width = 40; c.height = 40;
            const g = c.getContext('2d'); g.font = '32px ' + font; g.fillText(ch, 2, 32);
            return Array.from(g.getImageData(0, 0, 40, 40).data).join(','); };
        return draw('注') === draw('意');
    }""")
    assert not same, "Chinese characters are drawn as identical boxes: install a CJK font (fonts-noto-cjk)"
    page.screenshot(path=str(SHOTS / "glossary.png"), full_page=False)
