"""The number-translation corpus: determinism, disjoint splits, vocabulary round trip, lengths."""

from __future__ import annotations

from collections import Counter

import pytest
from num2words import num2words

from course_lib.data.numbers import (
    BOS,
    EOS,
    PAD,
    UNK,
    Vocab,
    detokenize,
    make_number_corpus,
    number_to_tokens,
    number_to_words,
    tokenize,
)


@pytest.fixture(scope="module")
def corpus():
    return make_number_corpus(per_digits=300, seed=0)


def test_tokenize_splits_hyphens_and_drops_commas():
    assert tokenize("quatre-vingt-dix-sept") == ["quatre", "-", "vingt", "-", "dix", "-", "sept"]
    assert tokenize("one million, two hundred and three") == ["one", "million", "two", "hundred", "and", "three"]
    assert tokenize("soixante et onze") == ["soixante", "et", "onze"]
    with pytest.raises(TypeError):
        tokenize(97)


@pytest.mark.parametrize("n", [0, 7, 21, 71, 80, 81, 97, 180, 200, 1001, 80000, 2_000_000, 987_654_321])
def test_french_round_trip_is_exact(n):
    text = num2words(n, lang="fr")
    assert detokenize(tokenize(text)) == text


def test_fast_converter_agrees_with_num2words():
    import random

    rng = random.Random(1)
    numbers = [0, 1, 10**9 - 1, 10**9, 10**12 - 1] + [rng.randrange(10 ** rng.randint(1, 12)) for _ in range(300)]
    for lang in ("en", "fr", "de"):
        for n in numbers:
            assert number_to_words(n, lang) == num2words(n, lang=lang), (lang, n)
    assert number_to_words(10**15, "fr") == num2words(10**15, lang="fr")


def test_number_to_tokens_validates():
    assert number_to_tokens(97, "fr") == ["quatre", "-", "vingt", "-", "dix", "-", "sept"]
    with pytest.raises(ValueError, match="number"):
        number_to_tokens(-1, "fr")
    with pytest.raises(TypeError, match="number"):
        number_to_tokens(1.5, "fr")


def test_deterministic_for_a_seed_and_different_across_seeds(corpus):
    again = make_number_corpus(per_digits=300, seed=0)
    assert corpus.train == again.train and corpus.valid == again.valid and corpus.test == again.test
    assert corpus.src_vocab.itos == again.src_vocab.itos and corpus.tgt_vocab.itos == again.tgt_vocab.itos
    assert corpus.fingerprint() == again.fingerprint()
    other = make_number_corpus(per_digits=300, seed=1)
    assert [p.number for p in other.test] != [p.number for p in corpus.test]
    assert other.fingerprint() != corpus.fingerprint()


def test_splits_are_disjoint_by_number_and_sized(corpus):
    train, valid, test = ({p.number for p in split} for split in (corpus.train, corpus.valid, corpus.test))
    assert not train & valid and not train & test and not valid & test
    assert len(train) == len(corpus.train) and len(test) == len(corpus.test)  # no duplicates inside a split
    total = len(train) + len(valid) + len(test)
    assert total == 10 + 90 + 300 * 7
    assert abs(len(train) / total - 0.8) < 0.01


def test_pairs_are_num2words(corpus):
    for pair in corpus.test[:50]:
        assert detokenize(pair.target) == num2words(pair.number, lang="fr")
        assert list(pair.source) == tokenize(num2words(pair.number, lang="en"))


def test_length_distribution(corpus):
    lengths = Counter(len(p.source) for p in corpus.train)
    assert min(lengths) == 1 and 17 <= max(lengths) <= 24
    # every split has short and long sentences, stratified by number of digits
    for split in corpus.splits().values():
        assert min(len(p.source) for p in split) <= 4 and max(len(p.source) for p in split) >= 17
    assert max(len(p.target) for p in corpus.train) <= 30


def test_vocab_round_trip_and_specials(corpus):
    vocab = corpus.tgt_vocab
    assert vocab.itos[:4] == [PAD, BOS, EOS, UNK]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    for pair in corpus.test[:100]:
        ids = vocab.encode(pair.target, add_bos=True, add_eos=True)
        assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        assert vocab.decode(ids) == list(pair.target)
    assert vocab.encode(["zorglub"]) == [vocab.unk_id]
    assert vocab.decode([5, vocab.eos_id, 6]) == [vocab.itos[5]]
    assert vocab.decode([0, 1, 5], strip=False) == [PAD, BOS, vocab.itos[5]]
    assert "mille" in vocab and "thousand" in corpus.src_vocab
    with pytest.raises(TypeError):
        vocab.encode("mille")
    with pytest.raises(ValueError):
        vocab.decode([len(vocab)])


def test_vocab_is_built_on_train_only_and_is_stable():
    v = Vocab(["b", "a", "b", "c", "c", "c"])
    assert v.itos[4:] == ["c", "b", "a"]
    assert len(Vocab(["a", "b", "b"], min_freq=2)) == 5


def test_bad_arguments():
    with pytest.raises(ValueError, match="per_digits"):
        make_number_corpus(per_digits=1)
    with pytest.raises(ValueError, match="max_digits"):
        make_number_corpus(max_digits=0)
    with pytest.raises(ValueError, match="fractions"):
        make_number_corpus(fractions=(0.5, 0.5, 0.5))
