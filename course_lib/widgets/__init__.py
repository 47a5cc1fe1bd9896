"""Interactive explorers for the lessons.

Each explorer is two parts, named in pairs: a plain function ``X_view`` that computes what the picture
shows (unit-tested in ``tests/``), and a thin ipywidgets shell ``X_explorer`` that calls it when a slider
moves (``scores_view`` / ``scores_explorer``, ``pooling_view`` / ``pooling_explorer``, ...). Submodules by
lesson topic, e.g. ``course_lib.widgets.scores`` and ``course_lib.widgets.pooling``.
"""
