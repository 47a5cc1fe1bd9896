"""Type (or pick and edit) a document, see its summary and where each word came from (lesson 11).

The picture shows the attention over the source at each output step and, for a pointer-generator, the
probability of generating p_gen beside each row: a low p_gen means the word was copied (See et al. 2017,
https://arxiv.org/abs/1704.04368, figure 1 draws the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from course_lib.data.documents import tokenize_document
from course_lib.summarise import Summariser, Summary, summarise
from course_lib.widgets._layout import LABEL_STYLE, fit_dropdown, hide_if_single, labelled

__all__ = ["summary_view", "describe_summary", "draw_summary", "summary_explorer"]


def summary_view(model: Summariser, text: str | Sequence[str], vocab: Any, *, max_len: int = 20) -> Summary:
    """Summarise one document given as text (tokenized like the corpus) or as tokens. Introduced in lesson 11."""
    tokens = tokenize_document(text) if isinstance(text, str) else [str(t) for t in text]
    if not tokens:
        raise ValueError("text is empty: type a document, e.g. 'rome beat milan 2 - 1 on sunday .'")
    if len(tokens) > 200:
        raise ValueError(f"text has {len(tokens)} tokens; keep a document under 200 (the models saw about 30)")
    return summarise(model, [tokens], vocab, max_len=max_len)[0]


def describe_summary(view: Summary, vocab: Any) -> str:
    """The lines the explorer prints: the summary, and which words were out of the vocabulary or copied."""
    oov = sorted({t for t in view.source if t not in vocab})
    lines = ["summary : " + " ".join(view.tokens),
             "source words out of the vocabulary: " + (", ".join(oov) if oov else "none")]
    copied = [t for t, c in zip(view.tokens, view.copied, strict=True) if c]
    if view.p_gen is None:
        lines.append("plain attention decoder: it can only write vocabulary words (<unk> for the rest)")
    else:
        lines.append("copied OOV words: " + (", ".join(copied) if copied else "none")
                     + f"   mean p_gen {float(view.p_gen.mean()):.2f}")
    return "\n".join(lines)


def draw_summary(view: Summary, ax: Any = None, title: str | None = None) -> Any:
    """Attention heatmap (output steps down, source tokens across) with p_gen in a strip on the right.

    Returns the figure. Introduced in lesson 11.
    """
    import matplotlib.pyplot as plt

    w = view.weights.detach().cpu().float().numpy()
    rows = [*view.tokens, "<eos>"][: w.shape[0]]
    cols = [*view.source, "<eos>"][: w.shape[1]]
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(0.28 * w.shape[1] + 3.0, 14), 0.3 * w.shape[0] + 1.6),
                               constrained_layout=True)
    else:
        fig = ax.figure
    image = ax.imshow(w, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(w.shape[1]), labels=cols, rotation=90, fontsize=7)
    ax.set_yticks(range(w.shape[0]), labels=rows, fontsize=8)
    ax.set_xlabel("source (keys)")
    ax.set_ylabel("summary (queries)")
    ax.set_title(title or " ".join(view.tokens), fontsize=9)
    if view.p_gen is not None:
        strip = ax.inset_axes((1.01, 0.0, 0.04, 1.0))
        strip.imshow(view.p_gen.detach().cpu().float().numpy()[: w.shape[0], None], cmap="Blues", vmin=0.0,
                     vmax=1.0, aspect="auto")
        strip.set_xticks([0], labels=["p_gen"], rotation=90, fontsize=7)
        strip.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight", pad=0.08)
    else:
        fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def summary_explorer(models: Mapping[str, Summariser], vocab: Any, examples: Mapping[str, str], *,
                     value: str | None = None) -> Any:
    """A model toggle, a drop-down of example documents and a text box to edit; prints the summary and draws
    where it looked and copied. Returns the widget box (its ``update`` attribute redraws). Lesson 11."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    if not models or not examples:
        raise ValueError("models and examples must each hold at least one entry")
    names = list(examples)
    picker = hide_if_single(fit_dropdown(widgets.Dropdown(options=names, value=names[0], description="example")))
    which = hide_if_single(labelled(widgets.ToggleButtons(options=list(models), value=list(models)[-1],
                                                          description="model")))
    box = widgets.Textarea(value=value if value is not None else examples[names[0]], description="document",
                           style=LABEL_STYLE,
                           continuous_update=False, layout=widgets.Layout(width="95%", height="90px"))
    out = widgets.Output()

    def pick(_: Any = None) -> None:
        box.value = examples[picker.value]

    def update(_: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                view = summary_view(models[which.value], box.value, vocab)
            except (ValueError, TypeError) as exc:
                print(exc)
                return
            print(describe_summary(view, vocab))
            fig = draw_summary(view)
            display(fig)
            plt.close(fig)

    picker.observe(pick, names="value")
    box.observe(update, names="value")
    which.observe(update, names="value")
    ui = widgets.VBox([which, picker, box, out])
    ui.update = update
    update()
    return ui
