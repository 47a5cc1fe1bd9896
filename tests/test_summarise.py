"""course_lib.summarise: the article's crash and its fix, extended ids, the pointer-generator mixture,
teacher forcing equal to step-by-step decoding, training, ROUGE and copy rates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib import summarise as sm
from course_lib.attention import masked_softmax
from course_lib.data.documents import make_document_corpus
from course_lib.data.numbers import Vocab


@pytest.fixture(scope="module")
def corpus():
    return make_document_corpus(n_train=300, n_test=30, seed=0, min_freq=3)


def test_article_class_crashes_for_long_sources_and_the_fix_runs():
    torch.manual_seed(0)
    article = sm.ArticleTextSummarization(20, 8, 8)
    src, tgt = torch.randint(0, 20, (5, 3)), torch.randint(0, 20, (4, 3))
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 2"):
        article(src, tgt)
    assert article(src[:1], tgt).shape == (4, 3, 20)  # a one-token source is the only case that runs
    fixed = sm.FixedTextSummarization(20, 8, 8)
    fixed.load_state_dict(article.state_dict())
    logits, weights = fixed(src, tgt, need_weights=True)
    assert logits.shape == (4, 3, 20) and weights.shape == (4, 5, 3)
    assert torch.allclose(weights.sum(1), torch.ones(4, 3))
    assert torch.allclose(fixed(src[:1], tgt), article(src[:1], tgt))  # same class where the article ran


def test_fixed_attend_matches_batch_first_masked_softmax():
    torch.manual_seed(1)
    att = nn.Linear(8, 1)
    hidden, outputs = torch.randn(1, 3, 4), torch.randn(6, 3, 4)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 4, 1])[None, :]  # (T, B)
    context, weights = sm.fixed_attend(hidden, outputs, att, mask)
    scores = att(torch.cat([hidden.expand(6, -1, -1), outputs], 2)).squeeze(-1).T  # (B, T)
    ref = masked_softmax(scores, mask=mask.T)
    assert torch.allclose(weights.squeeze(-1).T, ref, atol=1e-6)
    assert torch.all(weights.squeeze(-1)[~mask] == 0)
    assert torch.allclose(context.squeeze(0), torch.einsum("bt,tbh->bh", ref, outputs), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(1, 3, 5\)"):
        sm.fixed_attend(torch.randn(1, 3, 5), outputs, att)
    with pytest.raises(ValueError, match="mask"):
        sm.fixed_attend(hidden, outputs, att, mask.T)
    with pytest.raises(TypeError):
        sm.fixed_attend(hidden.long(), outputs, att)


def test_extend_vocab_and_encode():
    vocab = Vocab("beat scored , .".split())
    ids, oovs = sm.extend_vocab("rome beat milan , rome scored".split(), vocab)
    v = len(vocab)
    assert oovs == ["rome", "milan"]
    assert ids == [v, vocab.stoi["beat"], v + 1, vocab.stoi[","], v, vocab.stoi["scored"]]
    with pytest.raises(TypeError):
        sm.extend_vocab("rome beat", vocab)
    batch = sm.encode_documents(["rome beat milan .".split(), "milan scored".split()],
                                ["rome beat milan".split(), "juve scored".split()], vocab)
    assert batch.src.shape == (2, 5) and batch.src_lens.tolist() == [5, 3]
    assert batch.n_oov.tolist() == [2, 1] and batch.max_oov == 2
    assert batch.tgt_out_ext[0].tolist() == [v, vocab.stoi["beat"], v + 1, vocab.eos_id]
    assert batch.tgt_out_ext[1, 0] == vocab.unk_id  # "juve" is nowhere in its source: <unk>
    assert batch.tgt_out[0, 0] == vocab.unk_id and batch.tgt_in[0, 0] == vocab.bos_id
    sub = batch.take(torch.tensor([1]))
    assert sub.src.shape == (1, 3) and sub.oovs == [["milan"]]
    with pytest.raises(ValueError, match="same length"):
        sm.encode_documents([["a"]], [["a"], ["b"]], vocab)
    with pytest.raises(ValueError, match="empty"):
        sm.encode_documents([[]], None, vocab)


def test_final_distribution_sums_to_one_and_adds_repeats():
    torch.manual_seed(2)
    p_vocab = torch.softmax(torch.randn(2, 5), -1)
    weights = torch.softmax(torch.randn(2, 4), -1)
    p_gen = torch.tensor([[0.3], [1.0]])
    src_ext = torch.tensor([[5, 1, 5, 6], [0, 0, 2, 3]])
    out = sm.final_distribution(p_vocab, weights, p_gen, src_ext, 2)
    assert out.shape == (2, 7) and torch.allclose(out.sum(-1), torch.ones(2))
    assert torch.isclose(out[0, 5], 0.7 * (weights[0, 0] + weights[0, 2]))
    assert torch.isclose(out[0, 1], 0.3 * p_vocab[0, 1] + 0.7 * weights[0, 1])
    assert torch.allclose(out[1, :5], p_vocab[1])  # p_gen = 1: no copying
    assert torch.allclose(sm.final_distribution(p_vocab, weights, p_gen[:, 0], src_ext, 2), out)
    with pytest.raises(ValueError, match="outside"):
        sm.final_distribution(p_vocab, weights, p_gen, src_ext, 1)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        sm.final_distribution(p_vocab, weights[:, :3], p_gen, src_ext, 2)
    with pytest.raises(ValueError, match="n_oov"):
        sm.final_distribution(p_vocab, weights, p_gen, src_ext, -1)


@pytest.mark.parametrize("pointer", [False, True])
def test_forward_equals_step_by_step(corpus, pointer):
    torch.manual_seed(3)
    model = sm.Summariser(len(corpus.vocab), 8, 12, pointer=pointer).eval()
    docs = corpus.train[:4]
    batch = sm.encode_documents([d.source for d in docs], [d.summary for d in docs], corpus.vocab)
    logp, weights, p_gen = model(batch)
    width = len(corpus.vocab) + (batch.max_oov if pointer else 0)
    assert logp.shape == (4, batch.tgt_in.shape[1], width) and weights.shape[:2] == logp.shape[:2]
    assert torch.allclose(logp.exp().sum(-1), torch.ones(logp.shape[:2]), atol=1e-4)
    pad = (torch.arange(weights.shape[2])[None, :] >= batch.src_lens[:, None])[:, None, :].expand_as(weights)
    assert torch.all(weights[pad] == 0)
    assert (p_gen is not None) == pointer
    state = model.start(batch)
    for t in range(batch.tgt_in.shape[1]):
        step_logp, state, w, g = model.step(batch.tgt_in[:, t], state)
        assert torch.allclose(step_logp, logp[:, t], atol=1e-5) and torch.allclose(w, weights[:, t], atol=1e-6)
        if pointer:
            assert torch.allclose(g, p_gen[:, t], atol=1e-6)
    loss = sm.summary_loss(model, batch)
    assert torch.isfinite(loss) and loss > 0


def test_training_lowers_the_loss_and_decoding_copies(corpus):
    torch.manual_seed(0)
    data = sm.encode_documents([d.source for d in corpus.train], [d.summary for d in corpus.train], corpus.vocab)
    model = sm.Summariser(len(corpus.vocab), 16, 16, pointer=True)
    history = sm.train_summariser(model, data, steps=40, batch_size=32, progress=False)
    assert len(history.loss) == 40 and sum(history.loss[-5:]) < sum(history.loss[:5])
    out = sm.summarise(model, [d.source for d in corpus.test[:5]], corpus.vocab, max_len=12)
    for s in out:
        assert s.weights.shape == (min(len(s.tokens) + 1, 12), len(s.source) + 1)
        assert s.p_gen is not None and s.p_gen.shape == (s.weights.shape[0],)
        assert torch.allclose(s.weights.sum(-1), torch.ones(s.weights.shape[0]), atol=1e-5)
        for tok, c in zip(s.tokens, s.copied, strict=True):
            assert not c or (tok in s.source and tok not in corpus.vocab)
    plain = sm.Summariser(len(corpus.vocab), 16, 16)
    for s in sm.summarise(plain, [d.source for d in corpus.test[:3]], corpus.vocab, max_len=5):
        assert s.p_gen is None and not any(s.copied) and all(t in corpus.vocab for t in s.tokens)


def test_rouge_and_copy_rate():
    ref = "rome beat milan 2 - 1 , totti scored .".split()
    assert sm.rouge([ref], [ref]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    hyp = "<unk> beat <unk> 2 - 1 , <unk> scored .".split()
    scores = sm.rouge([hyp], [ref])
    assert 0 < scores["rouge2"] < scores["rouge1"] < 1
    rate = sm.copy_rate([hyp, ref], [ref, ref], {"rome", "milan", "totti", "1"})
    assert (rate.hits, rate.total) == (1 + 4, 8) and rate.rate == 5 / 8
    assert sm.copy_rate([["a"]], [["b"]], {"c"}).total == 0
    with pytest.raises(ValueError):
        sm.rouge([], [])
    with pytest.raises(ValueError):
        sm.copy_rate([["a"]], [], {"a"})


def test_summariser_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        sm.Summariser(0)
    with pytest.raises(TypeError, match="pointer"):
        sm.Summariser(10, pointer=1)
    with pytest.raises(ValueError, match="unk_id"):
        sm.Summariser(3, unk_id=3)
