"""Exercise checkers: instant, honest feedback that names what is wrong and hints at why.

Each lesson's checkers live in a submodule (``course_lib.checks.scoring`` for lesson 03, ...). They all
follow the same rules, implemented in ``course_lib.checks.core``:

- the learner's code runs on several cases and is compared with a reference;
- a stub that still raises ``NotImplementedError`` fails with "not implemented yet";
- an exception inside the learner's code becomes a failure with the exception's message, never a crash
  of the checker itself;
- a wrong answer that matches a known typical mistake (no scaling, softmax over the wrong axis, mask
  ignored, ...) gets a hint naming that mistake.

A failure raises ``CheckFailed`` (an ``AssertionError``), so a check cell fails visibly and nbgrader
counts it; a pass prints one line.
"""

from course_lib.checks.core import CheckFailed, passed

__all__ = ["CheckFailed", "passed"]
