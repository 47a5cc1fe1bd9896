"""course_lib.seq2seq: packing, the three models' shapes and masks, step == forward, greedy decoding,
training on a tiny task, metrics and results files."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import seq2seq as s2s
from course_lib.attention import AdditiveScores, lengths_to_mask
from course_lib.data.numbers import make_number_corpus


@pytest.fixture(scope="module")
def corpus():
    return make_number_corpus(per_digits=40, max_digits=5, seed=0)


@pytest.fixture(scope="module")
def packed(corpus):
    return s2s.pack_pairs(corpus.train, corpus.src_vocab, corpus.tgt_vocab)


def _models(corpus):
    v1, v2 = len(corpus.src_vocab), len(corpus.tgt_vocab)
    torch.manual_seed(0)
    return {
        "gru": s2s.GRUSeq2Seq(v1, v2, 8, 16),
        "additive": s2s.AttentionSeq2Seq(v1, v2, 8, 16, scoring="additive"),
        "dot": s2s.AttentionSeq2Seq(v1, v2, 8, 16, scoring="dot"),
        "general": s2s.AttentionSeq2Seq(v1, v2, 8, 16, scoring="general"),
        "transformer": s2s.TransformerSeq2Seq(v1, v2, d_model=16, num_heads=2, num_layers=2, d_ff=32),
    }


def test_pack_pairs(corpus, packed):
    assert len(packed) == len(corpus.train)
    assert packed.src.shape[1] == int(packed.src_lens.max())
    assert torch.all(packed.src[torch.arange(len(packed)), packed.src_lens - 1] == corpus.src_vocab.eos_id)
    assert torch.equal(packed.tgt_in, s2s.shift_right(packed.tgt_out, corpus.tgt_vocab.bos_id,
                                                      corpus.tgt_vocab.eos_id))
    row = corpus.train[0]
    assert corpus.src_vocab.decode(packed.src[0].tolist()) == list(row.source)
    assert corpus.tgt_vocab.decode(packed.tgt_out[0].tolist()) == list(row.target)
    batch = packed.take(torch.tensor([0, 1, 2]))
    assert batch.src.shape == (3, int(packed.src_lens[:3].max()))
    with pytest.raises(ValueError):
        s2s.pack_pairs([], corpus.src_vocab, corpus.tgt_vocab)


def test_last_valid_state_ignores_padding():
    torch.manual_seed(0)
    enc = s2s.GRUEncoder(10, 4, 6)
    src = torch.tensor([[4, 5, 6, 0, 0], [4, 5, 6, 7, 8]])
    outputs, final = enc(src, torch.tensor([3, 5]))
    alone, final_alone = enc(src[:1, :3], torch.tensor([3]))
    assert torch.allclose(final[0], final_alone[0], atol=1e-6)
    assert torch.allclose(final[1], outputs[1, -1])
    with pytest.raises(ValueError, match="src_lens"):
        enc(src, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="src"):
        enc(src, torch.tensor([3]))


@pytest.mark.parametrize("name", ["gru", "additive", "dot", "general", "transformer"])
def test_forward_equals_stepwise_decoding_and_ignores_source_padding(corpus, packed, name):
    model = _models(corpus)[name].eval()
    batch = packed.take(torch.arange(6))
    logits = model(batch.src, batch.src_lens, batch.tgt_in)
    assert logits.shape == (6, batch.tgt_in.shape[1], len(corpus.tgt_vocab))
    state = model.start(batch.src, batch.src_lens)
    steps = []
    for t in range(batch.tgt_in.shape[1]):
        step_logits, state, w = model.step(batch.tgt_in[:, t], state)
        steps.append(step_logits)
        if w is not None:  # attention weights: rows sum to 1, exactly 0 on padding
            assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5)
            assert torch.all(w[~lengths_to_mask(batch.src_lens, batch.src.shape[1])] == 0)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-4)
    # more padding on the source changes nothing
    padded = torch.cat([batch.src, torch.zeros(6, 3, dtype=torch.long)], dim=1)
    assert torch.allclose(model(padded, batch.src_lens, batch.tgt_in), logits, atol=1e-4)


def test_prepared_keys_give_the_scorers_scores():
    torch.manual_seed(0)
    for scoring in ("additive", "general"):
        model = s2s.AttentionSeq2Seq(10, 10, 4, 6, scoring=scoring)
        q, k = torch.randn(3, 6), torch.randn(3, 5, 6)
        assert torch.allclose(model.score(q, k, model.prepare_keys(k)), model.score(q, k), atol=1e-5)
    with pytest.raises(ValueError, match="scoring"):
        s2s.AttentionSeq2Seq(10, 10, scoring="cosine")


def test_attention_step_matches_additive_reference():
    torch.manual_seed(0)
    scorer = AdditiveScores(6, 6, 5)
    q, k = torch.randn(2, 6), torch.randn(2, 4, 6)
    mask = lengths_to_mask(torch.tensor([4, 2]), 4)
    context, weights = s2s.attention_step(scorer(q[:, None], k).squeeze(1), k, mask)
    assert context.shape == (2, 6) and weights.shape == (2, 4)
    assert torch.all(weights[1, 2:] == 0)
    assert torch.allclose(context, (weights[:, None] @ k).squeeze(1))
    with pytest.raises(ValueError, match="scores"):
        s2s.attention_step(torch.randn(2, 3), k, mask)


def test_transformer_weights_and_masks(corpus, packed):
    model = _models(corpus)["transformer"].eval()
    batch = packed.take(torch.arange(4))
    model(batch.src, batch.src_lens, batch.tgt_in, need_weights=True)
    b, s, t = 4, batch.src.shape[1], batch.tgt_in.shape[1]
    assert [w.shape for w in model.weights["encoder self"]] == [(b, 2, s, s)] * 2
    assert [w.shape for w in model.weights["decoder self"]] == [(b, 2, t, t)] * 2
    assert [w.shape for w in model.weights["cross"]] == [(b, 2, t, s)] * 2
    future = ~torch.ones(t, t, dtype=torch.bool).tril()
    assert torch.all(model.weights["decoder self"][0][:, :, future] == 0)
    pad = ~lengths_to_mask(batch.src_lens, s)
    assert torch.all(model.weights["cross"][1].permute(0, 2, 1, 3)[pad[:, None, None, :].expand(-1, t, 2, -1)] == 0)
    masks = s2s.decoder_self_mask(torch.tensor([2, 4]), 4)
    assert masks.shape == (2, 4, 4) and not masks[0, 3, 2] and masks[1, 3, 2] and not masks[1, 0, 1]
    cross = s2s.cross_attention_mask(torch.tensor([1, 3]), 2, 3)
    assert cross.tolist() == [[[True, False, False]] * 2, [[True, True, True]] * 2]


def test_greedy_search_stops_and_pads():
    script = torch.tensor([[5, 2, 7], [6, 6, 2]])

    def step(prev, t):
        logits = torch.zeros(2, 9)
        logits[torch.arange(2), script[:, t]] = 1.0
        return logits, t + 1

    ids = s2s.greedy_search(step, 0, 2, bos_id=1, eos_id=2, max_len=10)
    assert ids.tolist() == [[5, 2, 0], [6, 6, 2]]
    assert s2s.greedy_search(step, 0, 2, 1, 2, max_len=1).tolist() == [[5], [6]]
    assert s2s.greedy_search(step, 0, 2, 1, 2, max_len=0).shape == (2, 0)


def test_training_learns_a_tiny_task_and_metrics(corpus, packed):
    torch.manual_seed(0)
    model = s2s.AttentionSeq2Seq(len(corpus.src_vocab), len(corpus.tgt_vocab), 16, 32)
    history = s2s.train_seq2seq(model, packed, steps=60, batch_size=32, lr=1e-2, progress=False)
    assert len(history.loss) == 60 and history.seconds > 0
    assert sum(history.loss[-10:]) / 10 < 0.6 * sum(history.loss[:10]) / 10
    result = s2s.evaluate_translation(model, corpus.test, corpus.src_vocab, corpus.tgt_vocab)
    assert 0 <= result["exact_match"] <= 1 and 0 <= result["bleu"] <= 100
    assert sum(r["n"] for r in result["by_length"]) == len(corpus.test)
    hyps, weights = s2s.translate(model, [list(corpus.test[0].source)], corpus.src_vocab, corpus.tgt_vocab,
                                  return_weights=True)
    assert weights[0].shape == (min(len(hyps[0]) + 1, 40), len(corpus.test[0].source) + 1)


def test_metrics():
    refs = [["a", "b"], ["c"], ["d", "e", "f"]]
    assert s2s.exact_match(refs, refs) == 1.0
    assert s2s.exact_match([["a", "b"], ["x"], ["d"]], refs) == pytest.approx(1 / 3)
    long_refs = [["quatre", "-", "vingt", "-", "dix", "-", "sept"], ["deux", "cent", "un", "mille", "trois"]]
    assert s2s.corpus_bleu(long_refs, long_refs) == pytest.approx(100.0)
    assert s2s.corpus_bleu([["x"] * 5, ["y"] * 5], long_refs) < 1.0
    rows = s2s.accuracy_by_length([1, 2, 5, 9], [True, False, True, True], ((1, 4), (5, 8), (13, 16)))
    assert [r["n"] for r in rows] == [2, 1, 0]
    assert rows[0]["accuracy"] == 0.5 and rows[1]["accuracy"] == 1.0 and math.isnan(rows[2]["accuracy"])
    table = s2s.format_length_table({"A": rows, "B": rows})
    assert "1-4" in table and "A" in table.splitlines()[0]
    with pytest.raises(ValueError):
        s2s.exact_match([], [])
    assert s2s.smooth([1.0, 3.0, 5.0], window=2) == [1.0, 2.0, 4.0]


def test_length_grouped_batches_cover_an_epoch():
    lengths = torch.randint(1, 30, (1000,))
    batches = s2s.length_grouped_batches(lengths, 64, torch.Generator().manual_seed(0), pool=4)
    flat = torch.cat(batches)
    assert len(batches) == 1000 // 64 and len(set(flat.tolist())) == len(flat) == 64 * (1000 // 64)
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches) / len(batches)
    assert spread < 20  # grouped: far less spread than random batches (about 28)
