"""Type a sentence, see the entity tags a tagger gives it and where each token attends (lesson 10).

The taggers are those of ``course_lib.tagging`` (BiLSTM, BiLSTM + self-attention, Transformer encoder);
the attention heatmap is the last layer's weights averaged over heads (Vaswani et al. 2017,
https://arxiv.org/abs/1706.03762).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from course_lib.data.entities import entity_spans, tokenize
from course_lib.tagging import TokenVocab, predict_tags
from course_lib.widgets._layout import LABEL_STYLE, fit_dropdown, hide_if_single

__all__ = ["NerView", "ner_view", "draw_ner", "ner_explorer"]


@dataclass
class NerView:
    """What the explorer shows for one sentence. Introduced in lesson 10."""

    tokens: list[str]
    tags: list[str]
    known: list[bool]  # False where the token is not in the vocabulary (the model sees <unk:shape>)
    weights: Tensor | None  # (T, T): last attention layer, mean over heads; None for the BiLSTM

    @property
    def entities(self) -> list[tuple[str, str]]:
        """(type, text) of each predicted entity, in order."""
        joiner = "" if all(len(t) == 1 and "\u3400" <= t <= "\u9fff" for t in self.tokens) else " "
        return [(kind, joiner.join(self.tokens[a:b])) for kind, a, b in entity_spans(self.tags)]


def ner_view(model: nn.Module, text: str, vocab: TokenVocab, *, layer: int = -1, head: int | None = None) -> NerView:
    """Tokenize ``text`` as the corpus is (Chinese per character), tag it, and keep one layer's attention weights.

    ``layer`` indexes the attention layers (-1: the last), ``head`` picks one head (None: the mean over heads).
    Introduced in lesson 10.
    """
    from course_lib._validate import check_int

    check_int("layer", layer)
    if head is not None:
        check_int("head", head, minimum=0)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokens = tokenize(text)
    if not tokens:
        raise ValueError("text is empty: type a sentence such as 'Yesterday Jordan , as expected , laughed .'")
    if len(tokens) > 200:
        raise ValueError(f"text has {len(tokens)} tokens; keep it under 200")
    known = [t in vocab for t in tokens]
    weights: Tensor | None = None
    if _has_attention(model):
        result = predict_tags(model, [tokens], vocab, need_weights=True)
        assert isinstance(result, tuple)
        tags, maps = result
        layers, heads = maps[0].shape[:2]
        if not -layers <= layer < layers:
            raise ValueError(f"layer must lie in [{-layers}, {layers}) for this model, got {layer}")
        if head is not None and head >= heads:
            raise ValueError(f"head must lie in [0, {heads}) for this model, got {head}")
        chosen = maps[0][layer]  # (H, T, T)
        weights = chosen.mean(0) if head is None else chosen[head]  # (T, T)
    else:
        plain = predict_tags(model, [tokens], vocab)
        assert isinstance(plain, list)
        tags = plain
    return NerView(tokens, list(tags[0]), known, weights)


def _has_attention(model: nn.Module) -> bool:
    from course_lib.tagging import BiLSTMTagger

    return not isinstance(model, BiLSTMTagger)


def _cjk_font() -> bool:
    from matplotlib import font_manager

    return any(k in f.name for f in font_manager.fontManager.ttflist for k in ("CJK", "Hei", "Song", "WenQuanYi"))


def _label(token: str, i: int) -> str:
    """The tick label of a token: Chinese characters become their position when no CJK font is installed."""
    if any("\u3400" <= ch <= "\u9fff" for ch in token) and not _cjk_font():
        return f"#{i}"
    return token


def draw_ner(view: NerView, *, ax=None, title: str | None = None):
    """Heatmap of ``view.weights``, rows = queries labelled with their predicted tag; returns the figure.

    Introduced in lesson 10.
    """
    import matplotlib.pyplot as plt

    if view.weights is None:
        raise ValueError("this model has no attention weights to draw")
    w = view.weights.detach().cpu().float().numpy()
    n = len(view.tokens)
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.32 * n + 2.6, 0.26 * n + 1.4), constrained_layout=True)
    else:
        fig = ax.figure
    image = ax.imshow(w, cmap="Reds", vmin=0.0, vmax=float(w.max()), aspect="auto")
    cols = [_label(t, i) + ("" if k else "*") for i, (t, k) in enumerate(zip(view.tokens, view.known, strict=True))]
    rows = [f"{t} [{g}]" if g != "O" else t for t, g in zip(cols, view.tags, strict=True)]
    ax.set_xticks(range(n), labels=cols, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels=rows, fontsize=8)
    ax.set_xlabel("keys (* = unknown word)")
    ax.set_ylabel("queries [predicted tag]")
    names = "  ".join(f"{k}: " + " ".join(_label(view.tokens[j], j) for j in range(a, b))
                      for k, a, b in entity_spans(view.tags))
    ax.set_title(title or names or "no entity found", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def ner_explorer(models: Mapping[str, nn.Module], vocab: TokenVocab, *,
                 value: str = "Yesterday Jordan , as expected , flooded after the storm ."):
    """A text box and a model menu; shows the tags and the attention heatmap. Introduced in lesson 10."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    if not models:
        raise ValueError("models is empty")
    box = widgets.Text(value=value, description="sentence", continuous_update=False, style=LABEL_STYLE,
                       layout=widgets.Layout(width="90%"))
    names = list(models)
    choice = hide_if_single(fit_dropdown(widgets.Dropdown(options=names, value=names[-1], description="model")))
    out = widgets.Output()

    def update(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            try:
                view = ner_view(models[choice.value], box.value, vocab)
            except (ValueError, TypeError) as exc:
                print(exc)
                return
            print("  ".join(f"{t}/{g}" for t, g in zip(view.tokens, view.tags, strict=True)))
            print("entities:", view.entities or "none")
            if view.weights is not None:
                fig = draw_ner(view)
                display(fig)
                plt.close(fig)
            else:
                print("(the BiLSTM has no attention to draw)")

    box.observe(update, names="value")
    choice.observe(update, names="value")
    update()
    return widgets.VBox([box, choice, out])
