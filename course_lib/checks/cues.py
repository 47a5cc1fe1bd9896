"""Checkers for lesson 01 (attention cues): average pooling, query-dependent attention pooling, cue kinds.

The two-component view of attention (nonvolitional and volitional cues) goes back to James 1890; the
query/key/value reading of pooling follows Bahdanau et al. 2015 (https://arxiv.org/abs/1409.0473).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice

__all__ = [
    "reference_average_pool",
    "reference_attention_pool",
    "check_average_pool",
    "check_attention_pool",
    "CUE_SCENARIOS",
    "check_cue_kinds",
    "POOLING_CHANGE_OPTIONS",
    "check_pooling_prediction",
]


# --------------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------------
def reference_average_pool(values: Tensor) -> Tensor:
    """(..., n_k, d_v) -> (..., d_v): the plain mean of the values, whatever the query. Introduced in lesson 01."""
    if values.dim() < 2:
        raise ValueError(f"values must be (..., n_k, d_v), got shape {tuple(values.shape)}")
    return values.mean(dim=-2)


def reference_attention_pool(query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """(n_q, d), (n_k, d), (n_k, d_v) -> (n_q, d_v): softmax over keys of the dot products, times values.

    Introduced in lesson 01.
    """
    if query.dim() != 2 or keys.dim() != 2 or values.dim() != 2:
        raise ValueError(f"query, keys and values must be 2-D, got {tuple(query.shape)}, {tuple(keys.shape)}, "
                         f"{tuple(values.shape)}")
    if query.shape[1] != keys.shape[1] or keys.shape[0] != values.shape[0]:
        raise ValueError(f"need query (n_q, d), keys (n_k, d), values (n_k, d_v), got {tuple(query.shape)}, "
                         f"{tuple(keys.shape)}, {tuple(values.shape)}")
    weights = torch.softmax(query @ keys.T, dim=-1)  # (n_q, n_k), each row sums to 1
    return weights @ values  # (n_q, d_v)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Exercise (a): average pooling
# --------------------------------------------------------------------------------------------------
def check_average_pool(average_pool: Callable[[Tensor], Tensor]) -> None:
    """Check ``average_pool(values)``: (..., n_k, d_v) -> (..., d_v), the mean over the keys axis.

    Introduced in lesson 00.
    """
    require_callable(average_pool, "average_pool")
    g = _generator(1)
    shapes = [(6, 3), (4, 4), (2, 5, 3), (3, 7, 2), (1, 1)]
    for shape in shapes:
        values = torch.randn(*shape, generator=g)
        case = f"values of shape {shape}"
        expected = reference_average_pool(values)
        mistakes = {
            "you averaged over the last axis (the value features); average over the keys, axis -2":
                values.mean(dim=-1),
            "you summed the values; average pooling divides by the number of keys": values.sum(dim=-2),
            "you averaged everything into one number; keep one average per value feature": values.mean(),
            "you averaged over the first axis; with a batch in front the keys are axis -2, not 0":
                values.mean(dim=0),
            "you took the largest value (max pooling); average pooling takes the mean":
                values.max(dim=-2).values,
        }
        got = call_learner(average_pool, values.clone(), name="average_pool")
        compare(got, expected, "average_pool", case=case, mistakes=mistakes)
    passed("average_pool")


# --------------------------------------------------------------------------------------------------
# Exercise (b): query-dependent attention pooling
# --------------------------------------------------------------------------------------------------
def check_attention_pool(attention_pool: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """Check ``attention_pool(query, keys, values)``: softmax over keys of ``query @ keys.T``, times values.

    Introduced in lesson 01.
    """
    require_callable(attention_pool, "attention_pool")
    g = _generator(2)
    # (n_q, n_k, d, d_v); the square cases let wrong answers keep the right shape so the hint can name them.
    sizes = [(3, 5, 4, 2), (4, 4, 3, 4), (1, 6, 2, 3), (5, 3, 3, 3), (2, 7, 5, 7)]
    for n_q, n_k, d, d_v in sizes:
        query = torch.randn(n_q, d, generator=g)
        keys = torch.randn(n_k, d, generator=g)
        values = torch.randn(n_k, d_v, generator=g)
        case = f"query {tuple(query.shape)}, keys {tuple(keys.shape)}, values {tuple(values.shape)}"
        expected = reference_attention_pool(query, keys, values)
        scores = query @ keys.T  # (n_q, n_k)
        weights = torch.softmax(scores, dim=-1)
        mistakes = {
            "the softmax runs over the queries (dim=0); each query's weights must sum to 1 over the keys "
            "(dim=-1)": torch.softmax(scores, dim=0) @ values,
            "no softmax: raw dot products are not weights; turn them into weights that are >= 0 and sum "
            "to 1 over the keys": scores @ values,
            "you returned the attention weights; return the weighted average of the values, weights @ values":
                weights,
            "you divided the scores by sqrt(d); this exercise uses the plain dot product (scaling comes in "
            "lesson 03)": torch.softmax(scores / d**0.5, dim=-1) @ values,
            "the output ignores the query: that is average pooling; weight the values by softmax(query @ "
            "keys.T)": values.mean(dim=0, keepdim=True).expand(n_q, d_v),
        }
        got = call_learner(attention_pool, query.clone(), keys.clone(), values.clone(), name="attention_pool")
        compare(got, expected, "attention_pool", case=case, mistakes=mistakes)
    passed("attention_pool")


# --------------------------------------------------------------------------------------------------
# Exercise (c): which cue is which
# --------------------------------------------------------------------------------------------------
#: id -> (what happens, the right kind, a hint shown when the kind is wrong)
_SCENARIOS: dict[str, tuple[str, str, str]] = {
    "red_cup": ("Among grey cups on a desk, the one red cup catches your eye.", "nonvolitional",
                "would the red cup stand out even if you wanted nothing at all?"),
    "read_book": ("You want to read, so you look for the book.", "volitional",
                  "the search starts from what you want: that is a query"),
    "loud_bang": ("A door bangs and you turn your head.", "nonvolitional",
                  "you did not decide to look; the sound itself pulled your attention"),
    "find_keys": ("Before leaving home you scan the shelf for your keys.", "volitional",
                  "your goal (leaving) decides what you look for"),
    "flashing_ad": ("A flashing advert at the edge of a web page draws your gaze.", "nonvolitional",
                    "the flashing is a property of the thing itself, not of your intention"),
    "query_vector": ("In attention pooling, the query vector chooses which keys get large weights.", "volitional",
                     "the query plays the part of what you want; the weights change when the query changes"),
}

#: The scenarios a learner classifies: id -> description.
CUE_SCENARIOS: dict[str, str] = {key: text for key, (text, _, _) in _SCENARIOS.items()}

_ALIASES = {
    "nonvolitional": "nonvolitional", "non-volitional": "nonvolitional", "non volitional": "nonvolitional",
    "非自主性提示": "nonvolitional", "非自主": "nonvolitional",
    "volitional": "volitional", "自主性提示": "volitional", "自主": "volitional",
}


def check_cue_kinds(classify_cues: Callable[[], Mapping[str, str]]) -> None:
    """Check ``classify_cues()``: a dict giving each id of ``CUE_SCENARIOS`` "nonvolitional" or "volitional".

    Introduced in lesson 01.
    """
    require_callable(classify_cues, "classify_cues")
    answer = call_learner(classify_cues, name="classify_cues")
    if not isinstance(answer, Mapping):
        raise CheckFailed(f"classify_cues() should return a dict {{scenario id: 'nonvolitional' or 'volitional'}}, "
                          f"got {type(answer).__name__}")
    missing = [key for key in CUE_SCENARIOS if key not in answer]
    if missing:
        raise CheckFailed(f"classify_cues() has no label for {missing}; give every id of CUE_SCENARIOS a label")
    extra = [key for key in answer if key not in CUE_SCENARIOS]
    if extra:
        raise CheckFailed(f"classify_cues() labels unknown ids {extra}; the ids are {list(CUE_SCENARIOS)}")
    labels: dict[str, str] = {}
    for key, label in answer.items():
        normalised = _ALIASES.get(str(label).strip().lower()) if isinstance(label, str) else None
        if normalised is None:
            raise CheckFailed(f"classify_cues()[{key!r}] = {label!r}: use 'nonvolitional' or 'volitional'")
        labels[key] = normalised
    wrong = [key for key in CUE_SCENARIOS if labels[key] != _SCENARIOS[key][1]]
    if wrong:
        lines = [f"  {key!r} ({CUE_SCENARIOS[key]}) Hint: {_SCENARIOS[key][2]}" for key in wrong]
        raise CheckFailed(f"{len(wrong)} of {len(CUE_SCENARIOS)} labels are wrong:\n" + "\n".join(lines) +
                          "\nA nonvolitional cue comes from the thing itself (salience); a volitional cue comes "
                          "from what you want (the query).")
    passed("classify_cues")


# --------------------------------------------------------------------------------------------------
# Exercise (d): predict which pooling output a new query changes
# --------------------------------------------------------------------------------------------------
#: The options of exercise (d): which output changes when the query moves, keys and values held fixed.
POOLING_CHANGE_OPTIONS: dict[str, str] = {
    "a": "both outputs change",
    "b": "only the attention-pooling output changes",
    "c": "only the average-pooling output changes",
    "d": "neither output changes",
}


def _which_changes(keys: Tensor, values: Tensor, query: Tensor, moved: Tensor) -> str:
    """Run both poolings for two queries and return the option that describes what changed."""
    average = [reference_average_pool(values) for _ in (query, moved)]  # average pooling never reads the query
    attention = [reference_attention_pool(q[None, :], keys, values)[0] for q in (query, moved)]
    average_changed = not torch.allclose(average[0], average[1], atol=1e-6)
    attention_changed = not torch.allclose(attention[0], attention[1], atol=1e-6)
    return {(True, True): "a", (False, True): "b", (True, False): "c", (False, False): "d"}[
        (average_changed, attention_changed)]


def check_pooling_prediction(changes_with_query: object, changes_when_keys_equal: object) -> None:
    """Check two predictions (option letters of ``POOLING_CHANGE_OPTIONS``): what a moved query changes, with
    distinct keys and with every key the same vector. The truth comes from running both poolings.

    Introduced in lesson 01.
    """
    g = _generator(11)
    keys, values = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g)
    query, moved = torch.randn(3, generator=g), torch.randn(3, generator=g)
    same_keys = keys[:1].expand(5, 3)  # five copies of one key
    distinct = _which_changes(keys, values, query, moved)
    equal = _which_changes(same_keys, values, query, moved)
    check_choice(
        changes_with_query, "changes_with_query", POOLING_CHANGE_OPTIONS, distinct,
        StepHints("01-pooling-query", [
            "look at the inputs of each pooling: which of the two is even given the query?",
            "average pooling gives every value the weight 1/n whatever the query; attention pooling's weights are "
            "softmax(q . k_i), and q . k_i changes when q does",
        ]),
        why="average pooling never reads the query (weights 1/n); attention pooling's weights softmax(q . k_i) "
            "move with q, so its output moves with them",
        wrong={"a": "average pooling is not given the query at all, so it cannot change with it.",
               "c": "it is the other way round: average pooling ignores the query.",
               "d": "the scores q . k_i change when q does (the keys differ), so the weights and the output do."},
    )
    check_choice(
        changes_when_keys_equal, "changes_when_keys_equal", POOLING_CHANGE_OPTIONS, equal,
        StepHints("01-pooling-equal-keys", [
            "write down the scores q . k_1, ..., q . k_n when k_1 = ... = k_n: how do they differ from each other?",
            "equal scores give the softmax weights 1/n each, for every query: attention pooling then is average "
            "pooling",
        ]),
        why="with every key the same vector k, every score is the same number q . k, the softmax gives 1/n to each "
            "key whatever q is, and attention pooling becomes average pooling: a query can only choose between "
            "keys that differ",
        wrong={"a": "average pooling still ignores the query; and what can attention pooling choose between "
                    "when all keys look alike?",
               "b": "the scores q . k change with q, but they are all equal to each other, and the softmax only "
                    "sees their differences.",
               "c": "average pooling is not given the query at all."},
    )
