"""The entity corpus of lesson 10: valid BIO tags, held-out templates and names, cue sentences, locales."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from course_lib.data import entities as E
from course_lib.data.entities import TAGS, entity_spans, make_entity_corpus, tokenize


@pytest.fixture(scope="module")
def corpus():
    return make_entity_corpus(n_train=600, n_test=300, pool_size=60, seed=0)


def test_tokenize_words_symbols_and_chinese_characters():
    assert tokenize("Yesterday Jordan , as expected , laughed .") == [
        "Yesterday", "Jordan", ",", "as", "expected", ",", "laughed", "."]
    assert tokenize("Tran-Reed kaufte am 3. März 2021") == ["Tran-Reed", "kaufte", "am", "3", ".", "März", "2021"]
    assert tokenize("王建于2021年3月3日加入MBP公司。") == [
        "王", "建", "于", "2021", "年", "3", "月", "3", "日", "加", "入", "MBP", "公", "司", "。"]
    assert tokenize("03.03.2021") == ["03.03.2021"]
    with pytest.raises(TypeError, match="text"):
        tokenize(3)


def test_entity_spans_reads_bio_as_seqeval():
    from seqeval.metrics.sequence_labeling import get_entities

    cases = [["B-PER", "I-PER", "O", "B-LOC"], ["I-LOC", "O"], ["B-PER", "B-PER"], ["B-PER", "I-LOC", "O"],
             ["O", "O"], ["B-ORG", "I-ORG", "I-ORG"]]
    for tags in cases:
        assert entity_spans(tags) == [(k, a, b + 1) for k, a, b in get_entities(tags)]


def test_sentences_are_valid_and_every_locale_appears(corpus):
    for split in (corpus.train, corpus.test):
        assert {s.locale for s in split} == set(E.LOCALES)
        for s in split:
            assert len(s.tokens) == len(s.tags) > 0 and set(s.tags) <= set(TAGS)
            for kind, a, _ in entity_spans(s.tags):
                assert s.tags[a] == f"B-{kind}"  # every entity opens with B-
    zh = next(s for s in corpus.train if s.locale == "zh_CN")
    assert all(len(t) == 1 or not re.search("[\u3400-\u9fff]", t) for t in zh.tokens)  # one character a token
    assert any(t.startswith("B-DATE") for s in corpus.train for t in s.tags)


def test_test_split_holds_out_templates_and_names(corpus):
    assert not {s.template for s in corpus.train} & {s.template for s in corpus.test}

    def names(split):
        return {(s.locale, " ".join(s.tokens[a:b])) for s in split for k, a, b in entity_spans(s.tags)
                if k != "DATE"}

    assert not names(corpus.train) & names(corpus.test)


def test_held_out_templates_reuse_training_words():
    for loc in E.LOCALES:
        plain = E._plain_templates(loc, 0)
        assert not set(plain["train"]) & set(plain["test"]) and len(plain["test"]) >= 10
        known = set()
        for t in [*plain["train"], *E._FRAMES[loc]["train"], *E._FILLERS[loc]["train"],
                  *(c for v in E._CUES[loc].values() for c in v)]:
            known |= {w.lower() for w in tokenize(re.sub(r"\{\w+\}", " ", t))}
        for t in [*plain["test"], *E._FRAMES[loc]["test"], *E._FILLERS[loc]["test"]]:
            assert {w.lower() for w in tokenize(re.sub(r"\{\w+\}", " ", t))} <= known, (loc, t)


def test_cue_sentences_same_token_takes_the_type_of_its_cue(corpus):
    cue = [s for s in corpus.train if s.cue_distance is not None]
    assert 0.35 < len(cue) / len(corpus.train) < 0.65
    types = defaultdict(set)
    for s in cue:
        a, b = s.cue_entity
        c0, c1 = s.cue_span
        assert s.cue_distance == c0 - b >= 0 and s.tags[a].startswith("B-") and all(t == "O" for t in s.tags[c0:c1])
        types[(s.locale, " ".join(s.tokens[a:b]))].add(s.tags[a][2:])
    assert any(len(v) >= 2 for v in types.values()), "no token is a person in one sentence and a place in another"
    assert max(s.cue_distance for s in cue) >= 17 and min(s.cue_distance for s in cue) == 0


def test_seeded_and_arguments_checked(corpus):
    again = make_entity_corpus(n_train=600, n_test=300, pool_size=60, seed=0)
    assert again.fingerprint() == corpus.fingerprint() and again.train[:5] == corpus.train[:5]
    assert make_entity_corpus(n_train=20, n_test=20, pool_size=60, seed=1).fingerprint() != corpus.fingerprint()
    only = make_entity_corpus(n_train=20, n_test=10, pool_size=30, locales=["zh_CN"])
    assert {s.locale for s in only.train} == {"zh_CN"} and only.train[0].text == "".join(only.train[0].tokens)
    with pytest.raises(ValueError, match="n_train"):
        make_entity_corpus(n_train=0)
    with pytest.raises(ValueError, match="locales"):
        make_entity_corpus(locales=["xx_XX"])
    with pytest.raises(ValueError, match="cue_fraction"):
        make_entity_corpus(cue_fraction=1.5)
    with pytest.raises(TypeError, match="seed"):
        make_entity_corpus(seed="0")
