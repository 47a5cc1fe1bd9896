"""Pick a test sentence and a token: its attention weights beside its leave-one-out importance (lesson 18).

The attention row is the last layer's weights averaged over heads; for a model of several layers the
attention rollout (Abnar & Zuidema 2020, https://aclanthology.org/2020.acl-main.385/) is shown too. The
importance of token j is how far (total variation) the token's predicted tag distribution moves when token j
is replaced by its unknown-word id (leave-one-out, as in Jain & Wallace 2019, https://aclanthology.org/N19-1357/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from course_lib.data.entities import TAGS, Sentence
from course_lib.explain import attention_rollout, kendall_summary, leave_one_out
from course_lib.tagging import TokenVocab, pad_batch

__all__ = ["ExplainView", "explain_view", "draw_explain", "explain_explorer"]


@dataclass
class ExplainView:
    """What the explorer shows for one sentence and one query token. Introduced in lesson 18."""

    tokens: list[str]
    query: int
    tag: str  # the tag the model predicts for the query token
    attention: Tensor  # (T,) last layer, mean over heads
    rollout: Tensor | None  # (T,) attention rollout over all layers; None for a one-layer model
    importance: Tensor  # (T,) leave-one-out total variation of the query token's tag distribution
    tau: float | None  # Kendall's tau between attention and importance (None if undefined)


@torch.no_grad()
def explain_view(model: nn.Module, sentence: Sentence | Sequence[str], vocab: TokenVocab, query: int) -> ExplainView:
    """Attention of token ``query`` and the leave-one-out importance of every token for its tag.

    ``model`` is a tagger of lesson 10 with attention. Introduced in lesson 18.
    """
    from course_lib._validate import check_int

    tokens = list(sentence.tokens) if isinstance(sentence, Sentence) else list(sentence)
    if not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError("sentence must be a Sentence or a non-empty list of str tokens")
    query = check_int("query", query, minimum=0, maximum=len(tokens) - 1)
    ids, mask, _ = pad_batch([vocab.encode(tokens)])
    unk, _, _ = pad_batch([vocab.unknown_ids(tokens)])
    device = next(model.parameters()).device
    ids, mask, unk = ids.to(device), mask.to(device), unk.to(device)
    was_training = model.training
    model.eval()
    try:
        logits, weights = model(ids, mask, need_weights=True)
        if weights is None:
            raise ValueError(f"{type(model).__name__} has no attention weights to explain")
        per_layer = weights[0].mean(1)  # (L, T, T)
        roll = attention_rollout(per_layer)[query].cpu() if per_layer.shape[0] > 1 else None

        def probs(x: Tensor) -> Tensor:
            out, _ = model(x, mask)
            return out[:, query].softmax(-1)

        importance = leave_one_out(probs, ids, mask, unk)[0].cpu()
    finally:
        model.train(was_training)
    attention = per_layer[-1, query].cpu()
    try:
        tau: float | None = kendall_summary(attention[None], importance[None])["median"]
    except ValueError:
        tau = None
    return ExplainView(tokens, query, TAGS[int(logits[0, query].argmax())], attention, roll, importance, tau)


def draw_explain(view: ExplainView, *, title: str | None = None):
    """Rows attention (and rollout) and leave-one-out importance over the tokens, each scaled to its maximum.

    Returns the figure. Introduced in lesson 18.
    """
    from course_lib.viz import show_heatmaps

    rows = [view.attention] + ([view.rollout] if view.rollout is not None else []) + [view.importance]
    names = ["attention (last layer)"] + (["attention rollout"] if view.rollout is not None else []) + \
        ["leave-one-out importance"]
    grid = torch.stack([r / r.max().clamp_min(1e-12) for r in rows])  # (R, T), each row scaled to max 1
    tau = "undefined" if view.tau is None else f"{view.tau:.2f}"
    heading = title or (f"query '{view.tokens[view.query]}' (#{view.query}, tagged {view.tag}); "
                        f"Kendall tau(attention, importance) = {tau}")
    labels = [f"{t}" + (" <" if i == view.query else "") for i, t in enumerate(view.tokens)]
    return show_heatmaps(grid, xlabel="token (< = the query)", ylabel="", xticklabels=labels, yticklabels=names,
                         vmax=1.0, titles=[heading], figsize=(0.3 * len(view.tokens) + 3.5, 0.45 * len(rows) + 1.8))


def explain_explorer(models: Mapping[str, nn.Module], sentences: Sequence[Sentence], vocab: TokenVocab, *,
                     index: int = 0):
    """A sentence slider, a query-token menu and a model menu; shows ``draw_explain``. Introduced in lesson 18."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from course_lib.widgets._layout import LABEL_STYLE, fit_dropdown, hide_if_single

    if not models:
        raise ValueError("models is empty")
    if not sentences:
        raise ValueError("sentences is empty")
    names = list(models)
    choice = hide_if_single(fit_dropdown(widgets.Dropdown(options=names, value=names[0], description="model")))
    slider = widgets.IntSlider(value=index, min=0, max=len(sentences) - 1, description="sentence",
                               style=LABEL_STYLE, continuous_update=False)
    token = widgets.Dropdown(options=[(t, 0) for t in sentences[index].tokens[:1]], value=0, description="query",
                             style=LABEL_STYLE)
    out = widgets.Output()

    def default_query(s: Sentence) -> int:
        return s.cue_entity[0] if s.cue_entity is not None else 0

    def set_tokens(_=None) -> None:
        s = sentences[slider.value]
        token.options = [(f"{i}: {t}", i) for i, t in enumerate(s.tokens)]
        token.value = default_query(s)
        fit_dropdown(token)

    def update(_=None) -> None:
        with out:
            out.clear_output(wait=True)
            view = explain_view(models[choice.value], sentences[slider.value], vocab, token.value)
            fig = draw_explain(view)
            display(fig)
            plt.close(fig)

    def on_sentence(change=None) -> None:
        token.unobserve(update, names="value")
        set_tokens()
        token.observe(update, names="value")
        update()

    set_tokens()
    slider.observe(on_sentence, names="value")
    token.observe(update, names="value")
    choice.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([choice, slider, token]), out])
