"""Type a number, see its translation and the alignment the decoder attended along (lessons 08-09).

The alignment picture follows Bahdanau et al. 2015 (https://arxiv.org/abs/1409.0473), figure 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from course_lib.data.numbers import EOS, number_to_tokens, tokenize
from course_lib.seq2seq import translate
from course_lib.widgets._layout import LABEL_STYLE

__all__ = ["TranslationView", "translation_view", "translation_explorer", "draw_alignment", "alignment_figsize"]


@dataclass
class TranslationView:
    """What the explorer shows for one input. Introduced in lesson 08."""

    source: list[str]  # source tokens as the model sees them (<unk> for unknown words)
    output: list[str]  # the model's translation, without <eos>
    reference: list[str] | None  # num2words' translation when the input was a number
    weights: Tensor | None  # (len(output) + 1, len(source) + 1): output tokens and <eos> x source tokens and <eos>
    number: int | None = None

    @property
    def correct(self) -> bool | None:
        return None if self.reference is None else self.output == self.reference

    @property
    def output_labels(self) -> list[str]:
        return [*self.output, EOS]

    @property
    def source_labels(self) -> list[str]:
        return [*self.source, EOS]


def translation_view(model: nn.Module, text: str | int, src_vocab: Any, tgt_vocab: Any, *,
                     source_lang: str = "en", target_lang: str = "fr", max_len: int = 40,
                     allow_unknown: bool = False) -> TranslationView:
    """Translate ``text``: digits ("1984") are written out in words first (and give a reference), anything
    else is tokenized as number words ("two hundred and six"). Words the model never saw ("abc") raise a
    ValueError that names them, since the translation of ``<unk>`` would mean nothing; ``allow_unknown=True``
    translates them as ``<unk>`` instead. Introduced in lesson 08."""
    number: int | None = None
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    elif isinstance(text, str) and text.strip().replace("_", "").isdigit():
        number = int(text.strip().replace("_", ""))
    elif not isinstance(text, str):
        raise TypeError(f"text must be a str or an int, got {type(text).__name__}")
    if number is not None:
        if not 0 <= number < 10**12:
            raise ValueError(f"the number must lie in [0, 10**12), got {number}")
        source = number_to_tokens(number, source_lang)
        reference = number_to_tokens(number, target_lang)
    else:
        source, reference = tokenize(str(text).lower()), None
    if not source:
        raise ValueError("text is empty: type a number such as 1984 or 'ninety-seven'")
    unknown = [t for t in source if t not in src_vocab]
    if unknown and not allow_unknown:
        raise ValueError(f"{str(text).strip()!r} is not a number: type digits such as 1984 or number words such as "
                         f"'ninety-seven' (words the model does not know: {', '.join(dict.fromkeys(unknown))})")
    seen = [t if t in src_vocab else src_vocab.itos[src_vocab.unk_id] for t in source]
    hyps, weights = translate(model, [seen], src_vocab, tgt_vocab, max_len=max_len, return_weights=True)
    return TranslationView(seen, hyps[0], reference, weights[0], number)


def alignment_figsize(view: TranslationView) -> tuple[float, float]:
    """Width and height (inches) of the alignment picture: room for every cell, the rotated source labels
    below, the output labels on the left and the title, so that short inputs do not clip their labels.

    Introduced in lesson 08.
    """
    if view.weights is None:
        raise ValueError("this model has no attention weights to draw")
    rows, cols = view.weights.shape
    char = 0.075  # inches per character of an 8 pt label
    longest_source = max(len(t) for t in view.source_labels[:cols])
    longest_output = max(len(t) for t in view.output_labels[:rows])
    title = len(" ".join(view.output)) + 2
    width = max(0.45 * cols + char * longest_output + 2.4, char * 1.2 * title + 1.6, 4.0)
    height = 0.32 * rows + char * longest_source + 1.3
    return width, max(height, 2.4)


def draw_alignment(view: TranslationView, ax=None, title: str | None = None):
    """Heatmap of ``view.weights``: output tokens down, source tokens across; returns the figure.

    Introduced in lesson 08.
    """
    import matplotlib.pyplot as plt

    if view.weights is None:
        raise ValueError("this model has no attention weights to draw")
    w = view.weights.detach().cpu().float().numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=alignment_figsize(view), constrained_layout=True)
    else:
        fig = ax.figure
    image = ax.imshow(w, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(w.shape[1]), labels=view.source_labels[: w.shape[1]], rotation=90, fontsize=8)
    ax.set_yticks(range(w.shape[0]), labels=view.output_labels[: w.shape[0]], fontsize=8)
    ax.set_xlabel("source (keys)")
    ax.set_ylabel("output (queries)")
    mark = "" if view.correct is None else (" ✓" if view.correct else " ✗")
    ax.set_title(title or (" ".join(view.output) + mark), fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def translation_explorer(model: nn.Module, src_vocab: Any, tgt_vocab: Any, *, value: str = "1984"):
    """A text box (digits or English number words) and the translation with its alignment heatmap.

    Introduced in lesson 08.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    box = widgets.Text(value=value, description="number", continuous_update=False, style=LABEL_STYLE)
    out = widgets.Output()

    def update(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                view = translation_view(model, box.value, src_vocab, tgt_vocab)
            except (ValueError, TypeError) as exc:
                print(exc)
                return
            print("source   :", " ".join(view.source))
            print("model    :", " ".join(view.output))
            if view.reference is not None:
                print("num2words:", " ".join(view.reference), "(exact match)" if view.correct else "(differs)")
            if view.weights is not None:
                fig = draw_alignment(view)
                display(fig)
                plt.close(fig)

    box.observe(update, names="value")
    update()
    return widgets.VBox([box, out])

