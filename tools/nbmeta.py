"""What every notebook of the course stores in its metadata, written by the tools that write notebooks.

The kernelspec is ipykernel's own (``python3``, "Python 3 (ipykernel)"): JupyterLab then finds nothing to
change when a lesson is opened, so opening a lesson never marks it modified.
"""

from __future__ import annotations

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def set_kernelspec(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Store ipykernel's own kernelspec in ``nb`` (in place) and return it."""
    nb.metadata["kernelspec"] = nbformat.from_dict(dict(KERNELSPEC))
    return nb
