"""Short documents with one-line reference summaries, generated from templates (lesson 11, summarisation).

Three kinds of document: football match reports, weather forecasts and company results. Each has three or
four sentences (a few facts and a distractor sentence with other names and numbers) and a reference summary
(参考摘要) that states its key facts. Names come from the surname and city lists that ship inside Faker
(several locales, ASCII single words only); the numbers are drawn at random. Train and test documents use
disjoint pools of names and of large numbers, so every test name and every test profit figure is a word
the models never saw in training: the situation that the pointer-generator of See et al. 2017
(https://arxiv.org/abs/1704.04368) was designed for. Tokens are lower-case words and punctuation marks.

Introduced in lesson 11.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from course_lib._validate import check_choice, check_int, positive_int
from course_lib.data.numbers import Vocab

__all__ = ["KINDS", "Document", "DocumentCorpus", "name_pools", "make_document", "make_document_corpus",
           "tokenize_document"]

KINDS = ("match", "weather", "results")
_PERSON_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "sv_SE", "fi_FI")
_PLACE_LOCALES = ("de_DE", "it_IT", "nl_NL")
_WORD = re.compile(r"^[A-Za-z]{3,}$")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SKIES = ("sunny", "cloudy", "rainy", "stormy", "foggy", "clear")
_SUFFIXES = ("group", "holdings", "industries", "motors", "foods", "systems")
_QUARTERS = ("first", "second", "third", "fourth")


@dataclass(frozen=True)
class Document:
    """One document, its reference summary and the facts the summary states. Introduced in lesson 11."""

    kind: str
    source: tuple[str, ...]
    summary: tuple[str, ...]
    facts: dict[str, str] = field(compare=False, hash=False)

    @property
    def text(self) -> str:
        """The source as one string (tokens joined by spaces)."""
        return " ".join(self.source)


def tokenize_document(text: str) -> list[str]:
    """Lower-case words, numbers and punctuation marks as tokens: "Rome won 3-1." -> rome won 3 - 1 .

    Introduced in lesson 11.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return re.findall(r"[a-z]+|\d+|[^\sa-z\d]", text.lower())


@functools.cache
def _faker_words(kind: str) -> tuple[str, ...]:
    """Sorted ASCII single words from Faker's surname (kind="person") or city (kind="place") lists."""
    words: set[str] = set()
    if kind == "person":
        for loc in _PERSON_LOCALES:
            words |= {w.lower() for w in importlib.import_module(f"faker.providers.person.{loc}").Provider.last_names
                      if _WORD.match(w)}
    else:
        for loc in _PLACE_LOCALES:
            words |= {w.lower() for w in getattr(importlib.import_module(f"faker.providers.address.{loc}").Provider,
                                                 "cities", ()) if _WORD.match(w)}
    return tuple(sorted(words))


_FIXED_WORDS = frozenset({*_DAYS, *_SKIES, *_SUFFIXES, *_QUARTERS})


def name_pools(seed: int = 0) -> dict[str, dict[str, tuple[str, ...]]]:
    """Disjoint train/test pools: {"train": {"person", "place", "big"}, "test": {...}}. Introduced in lesson 11.

    People and places are Faker words; "big" numbers (100-999, profit figures and crowds) are split too.
    A word that is both a surname and a city goes to one split only.
    """
    check_int("seed", seed)
    rng = random.Random(seed)
    people = [w for w in _faker_words("person") if w not in _FIXED_WORDS]
    taken = set(people)
    places = [w for w in _faker_words("place") if w not in _FIXED_WORDS and w not in taken]
    big = [str(n) for n in range(100, 1000)]
    pools: dict[str, dict[str, tuple[str, ...]]] = {"train": {}, "test": {}}
    for key, items in (("person", people), ("place", places), ("big", big)):
        items = sorted(items)
        rng.shuffle(items)
        cut = len(items) * 3 // 4
        pools["train"][key], pools["test"][key] = tuple(items[:cut]), tuple(items[cut:])
    return pools


def make_document(kind: str, rng: random.Random, pool: dict[str, tuple[str, ...]]) -> Document:
    """One document of ``kind`` with names and numbers drawn from ``pool`` by ``rng``. Introduced in lesson 11."""
    check_choice("kind", kind, KINDS)

    def person() -> str:
        return rng.choice(pool["person"])

    def place() -> str:
        return rng.choice(pool["place"])

    day = rng.choice(_DAYS)
    if kind == "match":
        home, away = rng.sample(pool["place"], 2)
        hs = rng.randint(1, 6)
        aws = rng.randint(0, hs - 1)
        scorer, referee = person(), person()
        minute = rng.randint(2, 90)
        facts = {"home": home, "away": away, "home_goals": str(hs), "away_goals": str(aws), "scorer": scorer}
        first = rng.choice([f"{home} beat {away} {hs} - {aws} on {day} .",
                            f"{away} lost {aws} - {hs} away at {home} on {day} ."])
        goal = f"{scorer} scored the winner after {minute} minutes ."
        extra = rng.choice([f"referee {referee} booked {rng.randint(2, 7)} players .",
                            f"a crowd of {rng.choice(pool['big'])} watched in the rain ."])
        sentences = [first, goal, extra] if rng.random() < 0.6 else [first, extra, goal]
        summary = f"{home} beat {away} {hs} - {aws} , {scorer} scored ."
    elif kind == "weather":
        city, other = rng.sample(pool["place"], 2)
        sky = rng.choice(_SKIES)
        temp, wind, old = rng.randint(0, 35), rng.randint(5, 80), rng.randint(0, 35)
        forecaster = person()
        facts = {"city": city, "sky": sky, "temperature": str(temp), "day": day}
        first = rng.choice([f"{city} can expect {sky} skies on {day} .",
                            f"on {day} the skies over {city} will be {sky} ."])
        temps = f"temperatures will reach {temp} degrees , with winds of {wind} km / h ."
        extra = f"forecaster {forecaster} said {other} had {old} degrees last week ."
        sentences = [first, temps, extra] if rng.random() < 0.6 else [extra, first, temps]
        summary = f"{city} : {sky} , {temp} degrees on {day} ."
    else:
        name, rival = rng.sample(pool["person"], 2)
        suffix, rival_suffix = rng.choice(_SUFFIXES), rng.choice(_SUFFIXES)
        profit, rival_profit = rng.sample(pool["big"], 2)
        pct = rng.randint(1, 40)
        ceo = person()
        quarter = rng.choice(_QUARTERS)
        facts = {"company": f"{name} {suffix}", "profit": profit, "growth": str(pct)}
        first = rng.choice([f"{name} {suffix} reported profits of {profit} million for the {quarter} quarter .",
                            f"profits at {name} {suffix} rose to {profit} million in the {quarter} quarter ."])
        sales = f"chief executive {ceo} said sales grew {pct} percent ."
        extra = f"rival {rival} {rival_suffix} earned {rival_profit} million ."
        sentences = [first, sales, extra] if rng.random() < 0.6 else [first, extra, sales]
        summary = f"{name} {suffix} profit {profit} million , sales up {pct} percent ."
    source = " ".join(sentences).split()
    return Document(kind, tuple(source), tuple(summary.split()), facts)


@dataclass
class DocumentCorpus:
    """Train and test documents, the vocabulary built on the training split, the name pools. Lesson 11."""

    train: list[Document]
    test: list[Document]
    vocab: Vocab
    pools: dict[str, dict[str, tuple[str, ...]]]

    def unseen_words(self) -> set[str]:
        """Words of the test documents that never occur in a training document (names, big numbers)."""
        seen = {t for d in self.train for t in (*d.source, *d.summary)}
        return {t for d in self.test for t in (*d.source, *d.summary)} - seen

    def fingerprint(self) -> str:
        """A short hash of the test split (to check that two runs use the same documents)."""
        text = "\n".join(" ".join(d.source) + " | " + " ".join(d.summary) for d in self.test)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_document_corpus(n_train: int = 3000, n_test: int = 300, *, seed: int = 0, min_freq: int = 5,
                         kinds: Sequence[str] = KINDS) -> DocumentCorpus:
    """Seeded train/test documents with disjoint names; the vocabulary keeps training words seen >= ``min_freq``
    times (rarer ones are <unk>, out of vocabulary (未登录词), as in See et al. 2017). Introduced in lesson 11.
    """
    n_train, n_test = positive_int("n_train", n_train), positive_int("n_test", n_test)
    min_freq = positive_int("min_freq", min_freq)
    kinds = tuple(check_choice("kinds", k, KINDS) for k in kinds)
    if not kinds:
        raise ValueError("kinds must name at least one kind of document")
    pools = name_pools(seed)
    rng = random.Random(seed + 1)
    train = [make_document(kinds[i % len(kinds)], rng, pools["train"]) for i in range(n_train)]
    test = [make_document(kinds[i % len(kinds)], rng, pools["test"]) for i in range(n_test)]
    vocab = Vocab((t for d in train for t in (*d.source, *d.summary)), min_freq=min_freq)
    return DocumentCorpus(train, test, vocab, pools)
