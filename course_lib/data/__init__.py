"""Offline data sets of the course, built from data that ships inside installed packages (no downloads).

Import submodules explicitly, e.g. ``from course_lib.data.digits import make_cluttered_digits``. Every data
set a lesson uses lives here (``regression`` for lesson 02, ``numbers`` for 07-09, ``digits`` for 12-13), not
in the answer keys of ``course_lib.checks``.
"""
