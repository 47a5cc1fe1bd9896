"""Offline data sets of the course, built from data that ships inside installed packages (no downloads).

Import submodules explicitly, e.g. ``from course_lib.data.digits import make_cluttered_digits``.
"""
