"""The lesson 11 documents: determinism, disjoint names, summaries that state facts of their source."""

from __future__ import annotations

import random

import pytest

from course_lib.data.documents import (
    KINDS,
    make_document,
    make_document_corpus,
    name_pools,
    tokenize_document,
)


@pytest.fixture(scope="module")
def corpus():
    return make_document_corpus(n_train=600, n_test=90, seed=0)


def test_deterministic(corpus):
    again = make_document_corpus(n_train=600, n_test=90, seed=0)
    assert [d.source for d in again.test] == [d.source for d in corpus.test]
    assert again.fingerprint() == corpus.fingerprint()
    assert make_document_corpus(n_train=600, n_test=90, seed=1).fingerprint() != corpus.fingerprint()


def test_pools_are_disjoint():
    pools = name_pools(0)
    for key in ("person", "place", "big"):
        assert pools["train"][key] and pools["test"][key]
        assert not set(pools["train"][key]) & set(pools["test"][key])
    assert not set(pools["test"]["person"]) & set(pools["train"]["place"])
    assert all(w.isalpha() and w.islower() for w in pools["train"]["person"][:200])


def test_every_kind_and_facts_come_from_the_source(corpus):
    assert {d.kind for d in corpus.train} == set(KINDS)
    for d in corpus.train + corpus.test:
        assert 15 <= len(d.source) <= 45 and 5 <= len(d.summary) <= 14
        for value in d.facts.values():
            for word in value.split():
                assert word in d.source and word in d.summary, (word, d)
        assert d.text == " ".join(d.source)


def test_test_names_never_seen_in_training(corpus):
    seen = {t for d in corpus.train for t in (*d.source, *d.summary)}
    unseen = corpus.unseen_words()
    assert unseen and not unseen & seen
    names = [d.facts["scorer"] for d in corpus.test if d.kind == "match"]
    assert names and all(n not in seen and n not in corpus.vocab for n in names)
    assert all(d.facts["profit"] in unseen for d in corpus.test if d.kind == "results")


def test_vocab_min_freq(corpus):
    from collections import Counter

    counts = Counter(t for d in corpus.train for t in (*d.source, *d.summary))
    assert all(counts[w] >= 5 for w in corpus.vocab.itos[4:])
    assert "beat" in corpus.vocab and "<unk>" in corpus.vocab


def test_tokenize_document():
    assert tokenize_document("Rome beat Milan 3-1, Totti scored.") == \
        ["rome", "beat", "milan", "3", "-", "1", ",", "totti", "scored", "."]
    with pytest.raises(TypeError):
        tokenize_document(["rome"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        make_document("poem", random.Random(0), name_pools(0)["train"])
    with pytest.raises(ValueError, match="n_train"):
        make_document_corpus(n_train=0)
    with pytest.raises(TypeError, match="n_test"):
        make_document_corpus(n_test=2.5)
    with pytest.raises(ValueError, match="kinds"):
        make_document_corpus(kinds=("match", "sonnet"))
