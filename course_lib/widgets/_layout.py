"""Widths and visibility of explorer controls, so that labels and dropdown texts are never cut off.

ipywidgets gives a description 80 px by default ("temperature" shows as "temperat…") and a dropdown
300 px in all, whatever its options. These helpers size both from the texts they show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["LABEL_STYLE", "CHAR_PX", "text_px", "dropdown_width", "fit_dropdown", "hide_if_single", "labelled",
           "cut_labels", "pick_and_slide"]

#: Let the description take the width its text needs (ipywidgets' "initial").
LABEL_STYLE = {"description_width": "initial"}
#: A generous width of one character of JupyterLab's 13 px UI font, in pixels.
CHAR_PX = 8
_DROPDOWN_CHROME_PX = 48  # the arrow, the padding and the gap after the description


def text_px(text: str) -> int:
    """Pixels that ``text`` needs at ``CHAR_PX`` a character."""
    return CHAR_PX * len(str(text))


def dropdown_width(options: Iterable[Any], description: str = "") -> str:
    """The CSS width of a dropdown that shows its longest option and its description in full, e.g. "296px"."""
    labels = [str(o[0]) if isinstance(o, tuple) else str(o) for o in options]
    if not labels:
        raise ValueError("options is empty: a dropdown needs at least one option")
    return f"{max(text_px(t) for t in labels) + text_px(description) + _DROPDOWN_CHROME_PX}px"


def labelled(widget: Any) -> Any:
    """Give ``widget`` a description as wide as its text; return it."""
    widget.style.description_width = LABEL_STYLE["description_width"]
    return widget


def fit_dropdown(dropdown: Any) -> Any:
    """Size ``dropdown`` to its longest option and its full description; return it."""
    labelled(dropdown)
    dropdown.layout.width = dropdown_width(dropdown.options, dropdown.description)
    return dropdown


def hide_if_single(widget: Any) -> Any:
    """Hide a dropdown (or toggle) that has one option: there is nothing to choose. Returns it."""
    if len(widget.options) <= 1:
        widget.layout.display = "none"
    return widget


def _controls(widget: Any) -> list[Any]:
    """Every widget inside ``widget`` (boxes opened, Output areas skipped), depth first."""
    found = [widget]
    for child in getattr(widget, "children", ()):
        found += _controls(child)
    return found


DEFAULT_DESCRIPTION_PX = 80  # ipywidgets' fixed description width when none is set


def cut_labels(box: Any) -> list[str]:
    """The descriptions and dropdown options that ``box``'s controls would cut off (empty when all fit).

    A description fits when its width is "initial" or its text fits the default 80 px; a dropdown's options fit
    when the dropdown is at least ``dropdown_width`` wide. Used by the tests of every explorer.
    """
    cut = []
    for w in _controls(box):
        description = getattr(w, "description", "")
        style = getattr(w, "style", None)
        width = getattr(style, "description_width", "") if style is not None else ""
        if description and width != "initial" and text_px(description) > DEFAULT_DESCRIPTION_PX:
            cut.append(description)
        if type(w).__name__ == "Dropdown" and w.layout.display != "none":
            needed = int(dropdown_width(w.options, description)[:-2])
            have = str(w.layout.width or "")
            if not (have.endswith("px") and int(float(have[:-2])) >= needed):
                cut.append(f"{description} options")
    return cut


def pick_and_slide(options: Sequence[str], count: int, draw: Callable[[str, int], Any], *,
                   pick_label: str, index_label: str) -> Any:
    """An explorer of a dropdown (which model) and a slider (which example) that redraws ``draw(option, index)``.

    ``draw`` returns a matplotlib figure; it is shown in an Output widget and closed. The box is
    ``VBox([HBox([dropdown, slider]), output])``. Shared by the explorers of lessons 12 and 14.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    pick = hide_if_single(fit_dropdown(widgets.Dropdown(options=list(options), description=pick_label)))
    index = labelled(widgets.IntSlider(value=0, min=0, max=count - 1, description=index_label))
    out = widgets.Output()

    def update(_: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw(pick.value, index.value)
            display(fig)
            plt.close(fig)

    pick.observe(update, names="value")
    index.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([pick, index]), out])
