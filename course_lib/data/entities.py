"""Named-entity sentences generated offline with Faker (names, companies, places) and babel (dates).

The task of lesson 10. Sentences come from templates in three locales, English (en_US), German (de_DE) and
Chinese (zh_CN, written without spaces, so it is tagged per character), with BIO tags (Ramshaw & Marcus
1995, https://aclanthology.org/W95-0107/) for PER, ORG, LOC and DATE. Two kinds of template:

* **plain** templates, where each slot is filled from a pool of its own type (a Faker name for PER, ...);
* **cue** templates, where one entity is drawn from a pool shared by all three types and only a *cue*
  phrase several tokens away (after a filler of 0 to 3 neutral phrases) says whether it is a person, a
  place or a company: the same token is a PER in one sentence and a LOC in another.

The test split uses templates, fillers and names that never occur in training (held-out templates and
held-out names). Everything is seeded. Introduced in lesson 10.
"""

from __future__ import annotations

import datetime
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from course_lib._validate import check_choice, check_int, positive_int

__all__ = [
    "TAGS", "ENTITY_TYPES", "LOCALES", "CUE_TYPES", "tokenize", "Sentence", "EntityCorpus",
    "make_entity_corpus", "entity_spans",
]

ENTITY_TYPES = ("PER", "ORG", "LOC", "DATE")
TAGS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in "BI"))
LOCALES = ("en_US", "de_DE", "zh_CN")
CUE_TYPES = ("PER", "ORG", "LOC")

_CJK = "\u3400-\u9fff\u3000-\u303f\uff00-\uffef"
_TOKEN = re.compile(
    rf"[{_CJK}]"  # one Chinese character (or CJK punctuation) per token
    rf"|(?:(?![{_CJK}])[^\W\d_])+(?:[-'’](?:(?![{_CJK}])[^\W\d_])+)*"  # a word, hyphenated names kept whole
    r"|\d+(?:[.:/]\d+)*"  # a number, 03.03.2021 kept whole
    r"|[^\w\s]"  # any other symbol
)


def tokenize(text: str) -> list[str]:
    """Split text into tokens: words and numbers, each symbol alone, each Chinese character alone.

    Introduced in lesson 10.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text)


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each entity in a BIO sequence, ``end`` exclusive; a stray I- starts an entity.

    The same reading as seqeval's default (conlleval) mode. Introduced in lesson 10.
    """
    spans: list[tuple[str, int, int]] = []
    kind, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if kind is not None and (prefix in ("O", "B") or label != kind):
            spans.append((kind, start, i))
            kind = None
        if prefix in ("B", "I") and kind is None:
            kind, start = label, i
    return spans


@dataclass(frozen=True)
class Sentence:
    """One tagged sentence. ``cue_*`` describe its cue-dependent entity (None in plain sentences).

    Introduced in lesson 10.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    locale: str
    template: str  # template id, e.g. "en_US/plain/3" or "de_DE/cue/1"
    cue_entity: tuple[int, int] | None = None  # (start, end) of the entity whose type the cue decides
    cue_span: tuple[int, int] | None = None  # (start, end) of the cue phrase
    cue_distance: int | None = None  # tokens strictly between the entity and the cue

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def text(self) -> str:
        joiner = "" if self.locale == "zh_CN" else " "
        return joiner.join(self.tokens)


# --------------------------------------------------------------------------------------------------
# Templates. "train" and "test" lists are disjoint: the test split uses only held-out templates.
# --------------------------------------------------------------------------------------------------
# Plain sentences are composed from parts: subject, verb phrase (which depends on the subject's type) and
# a modifier, in the word order of each language (zh: subject, modifier, verb phrase). Every combination is
# a template; a seeded fifth of the combinations are held out for the test split, so test sentences are
# built from known words in frames never seen in training.
_PARTS: dict[str, dict[str, Any]] = {
    "en_US": {
        "subject": {"PER": ["{PER}", "{PER} from {LOC}", "Born in {LOC} , {PER}"],
                    "ORG": ["{ORG}", "The head of {ORG} , {PER} ,", "{ORG} in {LOC}"]},
        "verb": {"PER": ["joined {ORG}", "met {PER}", "flew from {LOC} to {LOC}", "moved to {LOC}",
                         "has worked for {ORG}", "lives in {LOC}", "called {PER} and {PER}"],
                 "ORG": ["opened a new office in {LOC}", "signed a deal with {ORG}", "hired {PER}",
                         "bought {ORG}", "moved to {LOC}"]},
        "modifier": ["on {DATE}", "since {DATE}", "last week", "in the spring", "with {PER}", "", "before {DATE}"],
    },
    "de_DE": {
        "subject": {"PER": ["{PER}", "{PER} aus {LOC}", "Die Chefin von {ORG} , {PER} ,"],
                    "ORG": ["{ORG}", "Die Firma {ORG}", "{ORG} aus {LOC}"]},
        "verb": {"PER": ["arbeitet bei {ORG}", "traf {PER}", "fuhr von {LOC} nach {LOC}", "zog nach {LOC}",
                         "wohnt in {LOC}", "rief {PER} und {PER} an"],
                 "ORG": ["eröffnet ein Büro in {LOC}", "unterschrieb einen Vertrag mit {ORG}", "stellte {PER} ein",
                         "kaufte {ORG}", "zog nach {LOC}"]},
        "modifier": ["am {DATE}", "seit dem {DATE}", "letzte Woche", "im Frühling", "mit {PER}", "", "vor dem {DATE}"],
    },
    "zh_CN": {
        "subject": {"PER": ["{PER}", "来自{LOC}的{PER}", "{ORG}的负责人{PER}"],
                    "ORG": ["{ORG}", "{LOC}的{ORG}", "位于{LOC}的{ORG}"]},
        "verb": {"PER": ["加入了{ORG}", "会见了{PER}", "从{LOC}飞往{LOC}", "搬到了{LOC}", "住在{LOC}",
                         "给{PER}和{PER}打了电话"],
                 "ORG": ["在{LOC}开设了新办公室", "与{ORG}签署了协议", "聘用了{PER}", "收购了{ORG}",
                         "搬到了{LOC}"]},
        "modifier": ["于{DATE}", "自{DATE}起", "上周", "在春天", "和{PER}一起", "", "在{DATE}之前"],
    },
}


def _compose(locale: str, subject: str, verb: str, modifier: str) -> str:
    if locale == "zh_CN":
        return f"{subject}{modifier}{verb}。"
    return " ".join(p for p in (subject, verb, modifier, ".") if p)


def _plain_templates(locale: str, seed: int) -> dict[str, list[str]]:
    """All subject x verb x modifier templates of a locale, split 80/20 (seeded) into train and test."""
    parts = _PARTS[locale]
    combos = [_compose(locale, s, v, m) for kind in ("PER", "ORG") for s in parts["subject"][kind]
              for v in parts["verb"][kind] for m in parts["modifier"]]
    random.Random(f"{seed}-{locale}-templates").shuffle(combos)
    cut = len(combos) // 5
    return {"test": sorted(combos[:cut]), "train": sorted(combos[cut:])}


# Cue frames: {AMB} is the entity whose type only the cue decides, {FILL} the neutral filler, {CUE} the cue.
_FRAMES = {
    "en_US": {"train": ["{AMB} {FILL} {CUE} .", "Yesterday {AMB} {FILL} {CUE} .", "Last week {AMB} {FILL} {CUE} ."],
              "test": ["In the spring {AMB} {FILL} {CUE} ."]},
    "de_DE": {"train": ["{AMB} {FILL} {CUE} .", "Auch {AMB} {FILL} {CUE} .", "Sogar {AMB} {FILL} {CUE} ."],
              "test": ["Und auch {AMB} {FILL} {CUE} ."]},
    "zh_CN": {"train": ["{AMB}{FILL}{CUE}。", "昨天{AMB}{FILL}{CUE}。", "上周{AMB}{FILL}{CUE}。"],
              "test": ["在春天{AMB}{FILL}{CUE}。"]},
}

# Cue phrases: the first token decides the type (shared by both splits: a cue never seen cannot be read).
_CUES = {
    "en_US": {
        "PER": ["smiled and waved to the crowd", "resigned as chairman", "married her childhood friend",
                "apologised to the fans", "laughed at the question"],
        "LOC": ["flooded after the storm", "lies on a wide river", "borders three other regions",
                "counts two million inhabitants", "twinned with a French town"],
        "ORG": ["hired two hundred engineers", "reported higher profits", "merged with a rival firm",
                "listed its shares on the exchange", "recalled a faulty product"],
    },
    "de_DE": {
        "PER": ["lächelte und winkte der Menge zu", "trat als Vorsitzender zurück", "heiratete im Sommer",
                "entschuldigte sich bei den Fans", "lachte über die Frage"],
        "LOC": ["überflutete nach dem Sturm", "liegt an einem breiten Fluss", "grenzt an drei Regionen",
                "zählt zwei Millionen Einwohner", "pflegt eine Partnerschaft mit Lyon"],
        "ORG": ["stellte zweihundert Ingenieure ein", "meldete höhere Gewinne", "fusionierte mit einem Rivalen",
                "notierte seine Aktien an der Börse", "rief ein fehlerhaftes Produkt zurück"],
    },
    "zh_CN": {
        "PER": ["笑着向人群挥手", "辞去了董事长职务", "嫁给了青梅竹马", "向球迷道歉", "笑着回答了问题"],
        "LOC": ["在暴雨后被洪水淹没", "位于一条大河旁边", "与三个地区接壤", "拥有两百万居民",
                "与一座法国小镇结为友好城市"],
        "ORG": ["招聘了两百名工程师", "公布了更高的利润", "与竞争对手合并", "在交易所上市", "召回了一款问题产品"],
    },
}

# Neutral filler phrases between the entity and its cue (disjoint between the splits).
_FILLERS = {
    "en_US": {
        "train": ["according to the local paper", "as expected", "after a long and difficult week",
                  "despite the heavy rain", "in a short statement", "without much fuss",
                  "as many had predicted for months", "to the surprise of almost nobody"],
        "test": ["as the local paper had predicted", "after a long statement", "despite a difficult week",
                 "to the surprise of many"],
    },
    "de_DE": {
        "train": ["wie die Zeitung berichtete", "wie erwartet", "nach einer langen und schwierigen Woche",
                  "trotz des starken Regens", "in einer kurzen Erklärung", "ohne großes Aufsehen",
                  "wie viele seit Monaten vermutet hatten", "zur Überraschung fast niemandes"],
        "test": ["wie viele erwartet hatten", "nach einer kurzen Erklärung", "trotz einer schwierigen Woche",
                 "zur Überraschung der Zeitung"],
    },
    "zh_CN": {
        "train": ["据当地报纸报道", "正如大家所料", "在漫长而艰难的一周之后", "尽管下着大雨", "在一份简短的声明中",
                  "没有引起太多关注", "正如许多人几个月来预测的那样", "几乎没有人感到意外"],
        "test": ["正如当地报纸所料", "在一份声明之后", "尽管在艰难的一周", "几乎没有引起意外"],
    },
}

_COMMA = {"en_US": ",", "de_DE": ",", "zh_CN": "，"}
_DATE_FORMATS = {"en_US": ("long", "medium"), "de_DE": ("long", "medium"), "zh_CN": ("long",)}


def _pools(locale: str, size: int, seed: int) -> dict[str, list[str]]:
    """``size`` distinct strings of each kind for one locale, from a seeded Faker."""
    from faker import Faker

    fake = Faker(locale)
    fake.seed_instance(seed)
    makers = {
        "PER": (lambda: fake.name()) if locale == "zh_CN" else (lambda: f"{fake.first_name()} {fake.last_name()}"),
        "ORG": fake.company,
        "LOC": fake.city,
        "AMB": (lambda: fake.name() if fake.random.random() < 0.5 else fake.city()) if locale == "zh_CN"
        else (lambda: fake.last_name() if fake.random.random() < 0.5 else fake.city()),
    }
    pools: dict[str, list[str]] = {}
    for kind, make in makers.items():
        seen: dict[str, None] = {}
        for _ in range(size * 20):
            if len(seen) >= size:
                break
            value = make().strip()
            if tokenize(value):
                seen[value] = None
        pools[kind] = list(seen)
    return pools


def _split_pools(locale: str, size: int, seed: int) -> dict[str, dict[str, list[str]]]:
    """Train and test pools per kind; a test string never occurs in any training pool of the locale."""
    pools = _pools(locale, size, seed)
    cut = int(0.7 * size)
    train = {k: v[:cut] for k, v in pools.items()}
    used = {s for v in train.values() for s in v}
    test = {k: [s for s in v[cut:] if s not in used] for k, v in pools.items()}
    return {"train": train, "test": test}


def _date(rng: random.Random, locale: str) -> str:
    from babel.dates import format_date

    day = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(80 * 365))
    return format_date(day, format=rng.choice(_DATE_FORMATS[locale]), locale=locale)


def _bio(kind: str, tokens: list[str]) -> list[str]:
    return [f"B-{kind}"] + [f"I-{kind}"] * (len(tokens) - 1)


def _fill(template: str, values: dict[str, list[str]]) -> tuple[list[str], list[str], dict[str, tuple[int, int]]]:
    """Tokens, tags and the (start, end) of each special slot; ``values`` are consumed in slot order."""
    tokens: list[str] = []
    tags: list[str] = []
    where: dict[str, tuple[int, int]] = {}
    for i, part in enumerate(re.split(r"\{(\w+)\}", template)):
        if i % 2 == 0:
            words = tokenize(part)
            tokens += words
            tags += ["O"] * len(words)
            continue
        words = tokenize(values[part].pop(0))
        start = len(tokens)
        tokens += words
        if part in ENTITY_TYPES:
            tags += _bio(part, words)
        elif part == "AMB":
            tags += _bio(values["_amb_type"][0], words)
        else:
            tags += ["O"] * len(words)
        where[part] = (start, len(tokens))
    return tokens, tags, where


def _plain_sentence(rng: random.Random, locale: str, index: int, template: str,
                    pools: dict[str, list[str]], split: str) -> Sentence:
    values: dict[str, list[str]] = {}
    for kind in ENTITY_TYPES:
        count = template.count("{" + kind + "}")
        if kind == "DATE":
            values[kind] = [_date(rng, locale) for _ in range(count)]
        else:
            values[kind] = rng.sample(pools[kind], count)
    tokens, tags, _ = _fill(template, values)
    return Sentence(tuple(tokens), tuple(tags), locale, f"{locale}/plain/{split}{index}")


def _cue_sentence(rng: random.Random, locale: str, index: int, frame: str, pools: dict[str, list[str]],
                  split: str, n_fill: int) -> Sentence:
    kind = rng.choice(CUE_TYPES)
    comma = _COMMA[locale]
    phrases = rng.sample(_FILLERS[locale][split], n_fill)
    joiner = "" if locale == "zh_CN" else " "
    fill = ""
    if phrases:
        sep = f"{joiner}{comma}{joiner}"
        fill = f"{comma}{joiner}" + sep.join(phrases) + f"{joiner}{comma}"
        if locale == "zh_CN":
            fill = comma + comma.join(phrases) + comma
    values = {"AMB": [rng.choice(pools["AMB"])], "_amb_type": [kind], "FILL": [fill],
              "CUE": [rng.choice(_CUES[locale][kind])]}
    if not fill:
        frame = frame.replace("{FILL} ", "").replace("{FILL}", "")
    tokens, tags, where = _fill(frame, values)
    entity, cue = where["AMB"], where["CUE"]
    return Sentence(tuple(tokens), tuple(tags), locale, f"{locale}/cue/{split}{index}", cue_entity=entity,
                    cue_span=cue, cue_distance=cue[0] - entity[1])


@dataclass
class EntityCorpus:
    """Train and test sentences (test: held-out templates, fillers and names). Introduced in lesson 10."""

    train: list[Sentence]
    test: list[Sentence]
    seed: int

    def fingerprint(self) -> str:
        """A short hash of the test split, to check that two lessons or runs used the same data."""
        text = "\n".join(" ".join(f"{w}/{t}" for w, t in zip(s.tokens, s.tags, strict=True)) for s in self.test)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_entity_corpus(n_train: int = 3000, n_test: int = 900, *, cue_fraction: float = 0.5,
                       locales: Sequence[str] = LOCALES, pool_size: int = 300, seed: int = 0) -> EntityCorpus:
    """Generate the corpus of lesson 10: plain and cue sentences in each locale, BIO-tagged.

    Args:
        n_train: number of training sentences.
        n_test: number of test sentences (held-out templates, fillers and names).
        cue_fraction: share of sentences built from cue templates.
        locales: any of ``LOCALES``.
        pool_size: Faker strings drawn per kind and locale before the 70/30 split of names.
        seed: seeds Faker, babel's dates and the choice of templates.
    """
    positive_int("n_train", n_train)
    positive_int("n_test", n_test)
    if isinstance(cue_fraction, bool) or not isinstance(cue_fraction, (int, float)):
        raise TypeError(f"cue_fraction must be a number, got {type(cue_fraction).__name__}")
    if not 0.0 <= cue_fraction <= 1.0:
        raise ValueError(f"cue_fraction must lie in [0, 1], got {cue_fraction}")
    if isinstance(locales, str) or not locales:
        raise ValueError(f"locales must be a non-empty sequence of locale names, got {locales!r}")
    for loc in locales:
        check_choice("locales", loc, LOCALES)
    check_int("pool_size", pool_size, minimum=20)
    check_int("seed", seed)
    pools = {loc: _split_pools(loc, pool_size, seed + i) for i, loc in enumerate(locales)}
    plain = {loc: _plain_templates(loc, seed) for loc in locales}
    out: dict[str, list[Sentence]] = {}
    for split, count in (("train", n_train), ("test", n_test)):
        rng = random.Random(f"{seed}-{split}")
        sentences = []
        for _ in range(count):
            loc = rng.choice(list(locales))
            if rng.random() < cue_fraction:
                frames = _FRAMES[loc][split]
                i = rng.randrange(len(frames))
                sentences.append(_cue_sentence(rng, loc, i, frames[i], pools[loc][split], split, rng.randrange(4)))
            else:
                templates = plain[loc][split]
                i = rng.randrange(len(templates))
                sentences.append(_plain_sentence(rng, loc, i, templates[i], pools[loc][split], split))
        out[split] = sentences
    return EntityCorpus(out["train"], out["test"], seed)
