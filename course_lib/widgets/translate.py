"""Type a number, see its translation and the alignment the decoder attended along (lessons 08-09).

The alignment picture follows Bahdanau et al. 2015 (https://arxiv.org/abs/1409.0473), figure 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from course_lib.data.numbers import EOS, number_to_tokens, tokenize
from course_lib.seq2seq import translate

__all__ = ["TranslationView", "translation_view", "translation_explorer", "draw_alignment"]


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
                     source_lang: str = "en", target_lang: str = "fr", max_len: int = 40) -> TranslationView:
    """Translate ``text``: digits ("1984") are written out in words first (and give a reference), anything
    else is tokenized as number words ("two hundred and six"). Introduced in lesson 08."""
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
    seen = [t if t in src_vocab else src_vocab.itos[src_vocab.unk_id] for t in source]
    hyps, weights = translate(model, [seen], src_vocab, tgt_vocab, max_len=max_len, return_weights=True)
    return TranslationView(seen, hyps[0], reference, weights[0], number)


def draw_alignment(view: TranslationView, ax=None, title: str | None = None):
    """Heatmap of ``view.weights``: output tokens down, source tokens across; returns the figure.

    Introduced in lesson 08.
    """
    import matplotlib.pyplot as plt

    if view.weights is None:
        raise ValueError("this model has no attention weights to draw")
    w = view.weights.detach().cpu().float().numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2.2, 0.32 * w.shape[0] + 1.4),
                               constrained_layout=True)
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

    box = widgets.Text(value=value, description="number", continuous_update=False)
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

