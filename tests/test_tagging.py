"""The taggers of lesson 10: shapes, masks, no mixing across the batch, weights, training, seqeval scores."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import tagging as tg
from course_lib.data.entities import TAGS, Sentence, make_entity_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_entity_corpus(n_train=200, n_test=60, pool_size=40, seed=0)


@pytest.fixture(scope="module")
def vocab(corpus):
    return tg.TokenVocab([w for s in corpus.train for w in s.tokens], min_freq=2)


def test_token_shape_and_vocab():
    assert [tg.token_shape(t) for t in ["Jordan", "NASA", "river", "2021", "王", ","]] == [
        "Xx", "XX", "x", "d", "zh", "p"]
    vocab = tg.TokenVocab(["Paris", "paris", "in", "in", "once"], min_freq=2)
    assert vocab.itos[0] == "<pad>" and "PARIS" in vocab and "once" not in vocab
    ids = vocab.encode(["Paris", "Zorglub", "zorglub", "42"])
    assert vocab.decode(ids) == ["paris", "<unk:Xx>", "<unk:x>", "<unk:d>"]
    assert vocab.decode(vocab.unknown_ids(["Paris", "in"])) == ["<unk:Xx>", "<unk:x>"]
    with pytest.raises(ValueError, match="token"):
        tg.token_shape("")


def test_pad_batch():
    ids, mask, tags = tg.pad_batch([[3, 4, 5], [6]], [[1, 2, 0], [3]])
    assert ids.tolist() == [[3, 4, 5], [6, 0, 0]] and mask.tolist() == [[True] * 3, [True, False, False]]
    assert tags.tolist() == [[1, 2, 0], [3, -100, -100]]
    with pytest.raises(ValueError, match="tags"):
        tg.pad_batch([[3, 4]], [[1]])
    with pytest.raises(ValueError, match="ids"):
        tg.pad_batch([])


@pytest.mark.parametrize("name", tg.MODEL_NAMES)
def test_models_tag_each_sentence_from_itself(name):
    model = tg.build_tagger(name, 30, d_model=16).eval()
    ids, mask, _ = tg.pad_batch([[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]])
    logits, weights = model(ids, mask, need_weights=True)
    assert logits.shape == (3, 5, len(TAGS))
    alone, _ = model(ids[1:2, :2], mask[1:2, :2])
    assert torch.allclose(logits[1, :2], alone[0], atol=1e-5)  # neither padding nor the other sentences leak in
    other = ids.clone()
    other[0] = torch.tensor([13, 14, 15, 16, 17])
    changed, _ = model(other, mask)
    assert torch.allclose(changed[1:], logits[1:], atol=1e-6)
    if name == "BiLSTM":
        assert weights is None
    else:
        layers = 1 if "LSTM" in name else 2
        assert weights.shape == (3, layers, 4, 5, 5)
        assert torch.allclose(weights.sum(-1), torch.ones(3, layers, 4, 5), atol=1e-5)
        assert torch.all(weights[1, ..., 2:] == 0)  # padding keys get exactly zero


def test_bad_inputs_name_the_argument():
    model = tg.BiLSTMTagger(30, d_model=8)
    ids, mask, _ = tg.pad_batch([[3, 4]])
    with pytest.raises(ValueError, match="ids"):
        model(ids[0], mask)
    with pytest.raises(ValueError, match=r"mask.*\(1, 2\)"):
        model(ids, mask[:, :1])
    with pytest.raises(ValueError, match="mask"):
        model(ids, mask.long())
    with pytest.raises(TypeError, match="need_weights"):
        model(ids, mask, need_weights=1)
    with pytest.raises(ValueError, match="name"):
        tg.build_tagger("CRF", 30)
    with pytest.raises(ValueError, match="d_model"):
        tg.TransformerTagger(30, d_model=0)


def test_training_lowers_the_loss_and_scores_are_seqeval(corpus, vocab):
    model = tg.build_tagger("BiLSTM + self-attention", len(vocab), d_model=16)
    history = tg.train_tagger(model, corpus.train, vocab, steps=40, batch_size=16, lr=1e-2, progress=False)
    assert len(history.loss) == 40 and all(math.isfinite(x) for x in history.loss)
    assert sum(history.loss[-5:]) < sum(history.loss[:5])
    result = tg.evaluate_tagger(model, corpus.test, vocab)
    from seqeval.metrics import f1_score

    assert math.isclose(result["f1"], f1_score([list(s.tags) for s in corpus.test], result["predictions"]))
    assert [row["bucket"] for row in result["by_distance"]] == ["0", "1-8", "9-16", "17+"]
    assert sum(row["sentences"] for row in result["by_distance"]) == sum(
        s.cue_distance is not None for s in corpus.test)
    table = tg.format_scores_table({"a": result})
    assert "F1" in table and "17+" in table
    tags, maps = tg.predict_tags(model, corpus.test[:3], vocab, need_weights=True)
    assert maps[0].shape == (1, 4, len(corpus.test[0]), len(corpus.test[0])) and len(tags[0]) == len(corpus.test[0])
    with pytest.raises(ValueError, match="attention"):
        tg.predict_tags(tg.BiLSTMTagger(len(vocab), d_model=8), corpus.test[:2], vocab, need_weights=True)
    with pytest.raises(ValueError, match="steps"):
        tg.train_tagger(model, corpus.train, vocab, steps=0)


def test_scores_by_cue_distance_counts_exact_cue_entities():
    s = Sentence(("Jordan", ",", "x", ",", "laughed", "."), ("B-PER", "O", "O", "O", "O", "O"), "en_US", "t",
                 cue_entity=(0, 1), cue_span=(4, 5), cue_distance=3)
    rows = tg.scores_by_cue_distance([s, s], [list(s.tags), ["B-LOC", "O", "O", "O", "O", "O"]])
    row = next(r for r in rows if r["bucket"] == "1-8")
    assert row["sentences"] == 2 and row["cue_accuracy"] == 0.5 and math.isclose(row["f1"], 0.5)
    assert math.isnan(rows[0]["cue_accuracy"])
    with pytest.raises(ValueError, match="predictions"):
        tg.scores_by_cue_distance([s], [])
