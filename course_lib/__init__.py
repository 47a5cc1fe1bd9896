"""course_lib: the tested helper library of the attention-mechanisms course.

Lessons build each piece in the open and then import it from here. Import submodules explicitly,
e.g. ``from course_lib.attention import masked_softmax``; importing the package has no side effects.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
