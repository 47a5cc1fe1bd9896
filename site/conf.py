"""Sphinx configuration of the course's static website (built by tools/build_site.py, `make site`).

Nothing executes: the pages show the outputs stored in the notebooks (nb_execution_mode = "off").
tools/build_site.py copies this file into a staging folder beside the generated pages and runs Sphinx there.
"""

from __future__ import annotations

project = "Attention mechanisms, from the first intuition to fused kernels"
html_title = "Attention mechanisms · 注意力机制"
language = "en"

extensions = ["myst_nb"]

# The stored outputs are the course's record: never re-run a notebook while building the site.
nb_execution_mode = "off"
# Consecutive stdout/stderr of a cell in one block, as JupyterLab shows them.
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
# Links such as lessons/08_seq2seq_with_attention.ipynb#glossary resolve to the section's anchor.
myst_heading_anchors = 3

exclude_patterns = [".doctrees", "**/.ipynb_checkpoints"]

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    # The notebooks are in the repository; the pages say how to run them (make lab), so no download
    # of the staged copies and no copied sources (half the site's size).
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_copy_source = False
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["course.css"]
# MathJax from the site itself (tools/build_site.py copies it into _static/mathjax/), not from a CDN: the
# pages' formulas render offline.
mathjax_path = "mathjax/tex-mml-chtml.js"
