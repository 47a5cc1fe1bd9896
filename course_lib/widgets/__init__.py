"""Interactive explorers for the lessons.

Each explorer is two parts: a plain function that computes what the picture shows (unit-tested in
``tests/``), and a thin ipywidgets shell that calls it when a slider moves. Submodules by lesson topic,
e.g. ``course_lib.widgets.scores`` and ``course_lib.widgets.pooling``.
"""
