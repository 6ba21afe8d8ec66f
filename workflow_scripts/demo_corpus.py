"""A small, deterministic, multi-way parallel corpus in en/de/fr/es/zh for demo runs of the workflow.

Sentences are composed from a hand-written parallel lexicon whose phrases carry every language's full
inflected form (German case, French/Spanish agreement, Spanish personal "a") and its UPOS tags, so record i
of every language is a translation of record i of every other and POS tags come out aligned with tokens.

Splits partition the combination space by a CRC32 of the combination (never Python's salted hash()):
a dev/test predicate (verb, object, place, time) never occurs in train, so neither does any sentence,
story or story prefix built from it. Sampling uses random.Random seeded with a string, which is stable
across processes and Python versions.

    python -m workflow_scripts.demo_corpus --task pos --lang de --split train -n 3
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import zlib
from functools import lru_cache
from typing import NamedTuple

from workflow_scripts.tasks import SPLITS, UPOS

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "zh")
TASKS: tuple[str, ...] = ("title_generation", "story_completion", "pos", "paraphrase", "qa", "parallel")

# ---------------------------------------------------------------------------------------------------
# Lexicon. Cells are "token/UPOS" sequences in LANGUAGES order: en | de | fr | es | zh.
# Chinese is segmented into words; its text is rendered without spaces.
# ---------------------------------------------------------------------------------------------------

# Animate noun phrases: story subjects, and both roles of a paraphrase pair (so the two can swap).
# Each cell is "subject form ; object form ; pronoun". An empty object form repeats the subject form;
# an empty pronoun drops the subject of later story sentences (Spanish is pro-drop).
_SUBJECTS = (
    ("the/DET small/ADJ dog/NOUN ; ; it/PRON", "der/DET kleine/ADJ Hund/NOUN ; den/DET kleinen/ADJ Hund/NOUN ; er/PRON",
     "le/DET petit/ADJ chien/NOUN ; ; il/PRON", "el/DET perro/NOUN pequeño/ADJ ; al/ADP perro/NOUN pequeño/ADJ ;",
     "那/DET 只/NOUN 小/ADJ 狗/NOUN ; ; 它/PRON"),
    ("the/DET black/ADJ cat/NOUN ; ; it/PRON", "die/DET schwarze/ADJ Katze/NOUN ; ; sie/PRON",
     "le/DET chat/NOUN noir/ADJ ; ; il/PRON", "el/DET gato/NOUN negro/ADJ ; al/ADP gato/NOUN negro/ADJ ;",
     "那/DET 只/NOUN 黑/ADJ 猫/NOUN ; ; 它/PRON"),
    ("the/DET young/ADJ teacher/NOUN ; ; she/PRON", "die/DET junge/ADJ Lehrerin/NOUN ; ; sie/PRON",
     "la/DET jeune/ADJ institutrice/NOUN ; ; elle/PRON",
     "la/DET joven/ADJ maestra/NOUN ; a/ADP la/DET joven/ADJ maestra/NOUN ;",
     "那/DET 位/NOUN 年轻/ADJ 的/PART 老师/NOUN ; ; 她/PRON"),
    ("the/DET old/ADJ farmer/NOUN ; ; he/PRON", "der/DET alte/ADJ Bauer/NOUN ; den/DET alten/ADJ Bauern/NOUN ; er/PRON",
     "le/DET vieux/ADJ fermier/NOUN ; ; il/PRON",
     "el/DET viejo/ADJ granjero/NOUN ; al/ADP viejo/ADJ granjero/NOUN ;", "那/DET 个/NOUN 老/ADJ 农民/NOUN ; ; 他/PRON"),
    ("the/DET little/ADJ girl/NOUN ; ; she/PRON", "das/DET kleine/ADJ Mädchen/NOUN ; ; es/PRON",
     "la/DET petite/ADJ fille/NOUN ; ; elle/PRON",
     "la/DET niña/NOUN pequeña/ADJ ; a/ADP la/DET niña/NOUN pequeña/ADJ ;", "那/DET 个/NOUN 小/ADJ 女孩/NOUN ; ; 她/PRON"),
    ("the/DET curious/ADJ boy/NOUN ; ; he/PRON",
     "der/DET neugierige/ADJ Junge/NOUN ; den/DET neugierigen/ADJ Jungen/NOUN ; er/PRON",
     "le/DET garçon/NOUN curieux/ADJ ; ; il/PRON", "el/DET niño/NOUN curioso/ADJ ; al/ADP niño/NOUN curioso/ADJ ;",
     "那/DET 个/NOUN 好奇/ADJ 的/PART 男孩/NOUN ; ; 他/PRON"),
    ("the/DET white/ADJ rabbit/NOUN ; ; it/PRON", "das/DET weiße/ADJ Kaninchen/NOUN ; ; es/PRON",
     "le/DET lapin/NOUN blanc/ADJ ; ; il/PRON", "el/DET conejo/NOUN blanco/ADJ ; al/ADP conejo/NOUN blanco/ADJ ;",
     "那/DET 只/NOUN 白/ADJ 兔子/NOUN ; ; 它/PRON"),
    ("my/PRON grandmother/NOUN ; ; she/PRON", "meine/DET Großmutter/NOUN ; ; sie/PRON",
     "ma/DET grand-mère/NOUN ; ; elle/PRON", "mi/DET abuela/NOUN ; a/ADP mi/DET abuela/NOUN ;",
     "我/PRON 的/PART 奶奶/NOUN ; ; 她/PRON"),
    ("the/DET friendly/ADJ doctor/NOUN ; ; he/PRON",
     "der/DET freundliche/ADJ Arzt/NOUN ; den/DET freundlichen/ADJ Arzt/NOUN ; er/PRON",
     "le/DET médecin/NOUN aimable/ADJ ; ; il/PRON", "el/DET médico/NOUN amable/ADJ ; al/ADP médico/NOUN amable/ADJ ;",
     "那/DET 位/NOUN 和蔼/ADJ 的/PART 医生/NOUN ; ; 他/PRON"),
    ("the/DET new/ADJ student/NOUN ; ; he/PRON",
     "der/DET neue/ADJ Student/NOUN ; den/DET neuen/ADJ Studenten/NOUN ; er/PRON",
     "le/DET nouvel/ADJ étudiant/NOUN ; ; il/PRON",
     "el/DET nuevo/ADJ estudiante/NOUN ; al/ADP nuevo/ADJ estudiante/NOUN ;", "那/DET 个/NOUN 新/ADJ 学生/NOUN ; ; 他/PRON"),
    ("the/DET yellow/ADJ bird/NOUN ; ; it/PRON",
     "der/DET gelbe/ADJ Vogel/NOUN ; den/DET gelben/ADJ Vogel/NOUN ; er/PRON",
     "l'/DET oiseau/NOUN jaune/ADJ ; ; il/PRON",
     "el/DET pájaro/NOUN amarillo/ADJ ; al/ADP pájaro/NOUN amarillo/ADJ ;",
     "那/DET 只/NOUN 黄色/ADJ 的/PART 小鸟/NOUN ; ; 它/PRON"),
    ("our/PRON neighbour/NOUN ; ; he/PRON", "unser/DET Nachbar/NOUN ; unseren/DET Nachbarn/NOUN ; er/PRON",
     "notre/DET voisin/NOUN ; ; il/PRON", "nuestro/DET vecino/NOUN ; a/ADP nuestro/DET vecino/NOUN ;",
     "我们/PRON 的/PART 邻居/NOUN ; ; 他/PRON"),
)

# Verbs in the 3rd person singular present; then the English base form (for do-support questions) and
# which objects the verb takes. "+" splits off a preposition that belongs in front of the object, because
# German word order can put the time adverb between verb and object ("wartet heute auf den Hund").
_VERBS = (
    ("sees/VERB", "sieht/VERB", "voit/VERB", "ve/VERB", "看见/VERB", "see", "thing person"),
    ("finds/VERB", "findet/VERB", "trouve/VERB", "encuentra/VERB", "找到/VERB", "find", "thing person"),
    ("looks/VERB for/ADP", "sucht/VERB", "cherche/VERB", "busca/VERB", "寻找/VERB", "look for", "thing person"),
    ("draws/VERB", "zeichnet/VERB", "dessine/VERB", "dibuja/VERB", "画/VERB", "draw", "thing person"),
    ("buys/VERB", "kauft/VERB", "achète/VERB", "compra/VERB", "买/VERB", "buy", "thing"),
    ("holds/VERB", "hält/VERB", "tient/VERB", "sostiene/VERB", "拿/VERB 着/AUX", "hold", "thing"),
    ("sells/VERB", "verkauft/VERB", "vend/VERB", "vende/VERB", "卖/VERB", "sell", "thing"),
    ("hides/VERB", "versteckt/VERB", "cache/VERB", "esconde/VERB", "藏/VERB", "hide", "thing"),
    ("forgets/VERB", "vergisst/VERB", "oublie/VERB", "olvida/VERB", "忘记/VERB", "forget", "thing"),
    ("carries/VERB", "trägt/VERB", "porte/VERB", "lleva/VERB", "带/VERB 着/AUX", "carry", "thing"),
    ("greets/VERB", "begrüßt/VERB", "salue/VERB", "saluda/VERB", "问候/VERB", "greet", "person"),
    ("waits/VERB for/ADP", "wartet/VERB + auf/ADP", "attend/VERB", "espera/VERB", "等/VERB", "wait for", "person"),
)

# Inanimate objects, already in object form (German accusative).
_OBJECTS = (
    ("the/DET red/ADJ ball/NOUN", "den/DET roten/ADJ Ball/NOUN", "la/DET balle/NOUN rouge/ADJ",
     "la/DET pelota/NOUN roja/ADJ", "那/DET 个/NOUN 红色/ADJ 的/PART 球/NOUN"),
    ("the/DET old/ADJ book/NOUN", "das/DET alte/ADJ Buch/NOUN", "le/DET vieux/ADJ livre/NOUN",
     "el/DET libro/NOUN viejo/ADJ", "那/DET 本/NOUN 旧/ADJ 书/NOUN"),
    ("a/DET green/ADJ apple/NOUN", "einen/DET grünen/ADJ Apfel/NOUN", "une/DET pomme/NOUN verte/ADJ",
     "una/DET manzana/NOUN verde/ADJ", "一/NUM 个/NOUN 青/ADJ 苹果/NOUN"),
    ("the/DET chocolate/NOUN cake/NOUN", "den/DET Schokoladenkuchen/NOUN", "le/DET gâteau/NOUN au/ADP chocolat/NOUN",
     "el/DET pastel/NOUN de/ADP chocolate/NOUN", "那/DET 块/NOUN 巧克力/NOUN 蛋糕/NOUN"),
    ("a/DET blue/ADJ cap/NOUN", "eine/DET blaue/ADJ Mütze/NOUN", "une/DET casquette/NOUN bleue/ADJ",
     "una/DET gorra/NOUN azul/ADJ", "一/NUM 顶/NOUN 蓝/ADJ 帽子/NOUN"),
    ("the/DET long/ADJ letter/NOUN", "den/DET langen/ADJ Brief/NOUN", "la/DET longue/ADJ lettre/NOUN",
     "la/DET carta/NOUN larga/ADJ", "那/DET 封/NOUN 长/ADJ 信/NOUN"),
    ("the/DET new/ADJ bicycle/NOUN", "das/DET neue/ADJ Fahrrad/NOUN", "le/DET nouveau/ADJ vélo/NOUN",
     "la/DET bicicleta/NOUN nueva/ADJ", "那/DET 辆/NOUN 新/ADJ 自行车/NOUN"),
    ("a/DET white/ADJ cup/NOUN", "eine/DET weiße/ADJ Tasse/NOUN", "une/DET tasse/NOUN blanche/ADJ",
     "una/DET taza/NOUN blanca/ADJ", "一/NUM 个/NOUN 白/ADJ 杯子/NOUN"),
    ("the/DET golden/ADJ key/NOUN", "den/DET goldenen/ADJ Schlüssel/NOUN", "la/DET clé/NOUN dorée/ADJ",
     "la/DET llave/NOUN dorada/ADJ", "那/DET 把/NOUN 金色/ADJ 的/PART 钥匙/NOUN"),
    ("the/DET heavy/ADJ bag/NOUN", "die/DET schwere/ADJ Tasche/NOUN", "le/DET sac/NOUN lourd/ADJ",
     "la/DET bolsa/NOUN pesada/ADJ", "那/DET 个/NOUN 沉重/ADJ 的/PART 包/NOUN"),
    ("some/DET fresh/ADJ bread/NOUN", "frisches/ADJ Brot/NOUN", "du/DET pain/NOUN frais/ADJ",
     "pan/NOUN fresco/ADJ", "一些/DET 新鲜/ADJ 的/PART 面包/NOUN"),
    ("a/DET wooden/ADJ chair/NOUN", "einen/DET Holzstuhl/NOUN", "une/DET chaise/NOUN en/ADP bois/NOUN",
     "una/DET silla/NOUN de/ADP madera/NOUN", "一/NUM 把/NOUN 木头/NOUN 椅子/NOUN"),
    ("the/DET yellow/ADJ umbrella/NOUN", "den/DET gelben/ADJ Regenschirm/NOUN", "le/DET parapluie/NOUN jaune/ADJ",
     "el/DET paraguas/NOUN amarillo/ADJ", "那/DET 把/NOUN 黄色/ADJ 的/PART 雨伞/NOUN"),
    ("the/DET old/ADJ map/NOUN", "die/DET alte/ADJ Landkarte/NOUN", "la/DET vieille/ADJ carte/NOUN",
     "el/DET mapa/NOUN antiguo/ADJ", "那/DET 张/NOUN 旧/ADJ 地图/NOUN"),
)

_PLACES = (
    ("in/ADP the/DET garden/NOUN", "im/ADP Garten/NOUN", "dans/ADP le/DET jardin/NOUN", "en/ADP el/DET jardín/NOUN",
     "在/ADP 花园/NOUN 里/ADP"),
    ("in/ADP the/DET kitchen/NOUN", "in/ADP der/DET Küche/NOUN", "dans/ADP la/DET cuisine/NOUN",
     "en/ADP la/DET cocina/NOUN", "在/ADP 厨房/NOUN 里/ADP"),
    ("at/ADP the/DET market/NOUN", "auf/ADP dem/DET Markt/NOUN", "au/ADP marché/NOUN", "en/ADP el/DET mercado/NOUN",
     "在/ADP 市场/NOUN 上/ADP"),
    ("in/ADP the/DET park/NOUN", "im/ADP Park/NOUN", "dans/ADP le/DET parc/NOUN", "en/ADP el/DET parque/NOUN",
     "在/ADP 公园/NOUN 里/ADP"),
    ("at/ADP school/NOUN", "in/ADP der/DET Schule/NOUN", "à/ADP l'/DET école/NOUN", "en/ADP la/DET escuela/NOUN",
     "在/ADP 学校/NOUN 里/ADP"),
    ("in/ADP the/DET library/NOUN", "in/ADP der/DET Bibliothek/NOUN", "à/ADP la/DET bibliothèque/NOUN",
     "en/ADP la/DET biblioteca/NOUN", "在/ADP 图书馆/NOUN 里/ADP"),
    ("at/ADP the/DET station/NOUN", "am/ADP Bahnhof/NOUN", "à/ADP la/DET gare/NOUN", "en/ADP la/DET estación/NOUN",
     "在/ADP 火车站/NOUN"),
    ("on/ADP the/DET beach/NOUN", "am/ADP Strand/NOUN", "sur/ADP la/DET plage/NOUN", "en/ADP la/DET playa/NOUN",
     "在/ADP 海滩/NOUN 上/ADP"),
    ("in/ADP the/DET forest/NOUN", "im/ADP Wald/NOUN", "dans/ADP la/DET forêt/NOUN", "en/ADP el/DET bosque/NOUN",
     "在/ADP 森林/NOUN 里/ADP"),
)

# Only adverbs compatible with the simple present, which every sentence uses.
_TIMES = (
    ("today/NOUN", "heute/ADV", "aujourd'hui/ADV", "hoy/ADV", "今天/NOUN"),
    ("every/DET day/NOUN", "jeden/DET Tag/NOUN", "chaque/DET jour/NOUN", "cada/DET día/NOUN", "每/DET 天/NOUN"),
    ("in/ADP the/DET morning/NOUN", "am/ADP Morgen/NOUN", "le/DET matin/NOUN", "por/ADP la/DET mañana/NOUN",
     "早上/NOUN"),
    ("in/ADP the/DET evening/NOUN", "am/ADP Abend/NOUN", "le/DET soir/NOUN", "por/ADP la/DET noche/NOUN", "晚上/NOUN"),
    ("on/ADP Sundays/PROPN", "sonntags/ADV", "le/DET dimanche/NOUN", "los/DET domingos/NOUN", "星期天/NOUN"),
    ("now/ADV", "jetzt/ADV", "maintenant/ADV", "ahora/ADV", "现在/NOUN"),
    ("this/DET afternoon/NOUN", "heute/ADV Nachmittag/NOUN", "cet/DET après-midi/NOUN", "esta/DET tarde/NOUN",
     "今天/NOUN 下午/NOUN"),
)

# Constituent order: S subject, V verb, O object, P place, T time, "," comma; then the fronted-time variant
# used for paraphrases (German keeps the verb second, so the subject moves behind it).
_ORDER = {"en": ("SVOPT", "T,SVOP"), "fr": ("SVOPT", "T,SVOP"), "es": ("SVOPT", "T,SVOP"),
          "de": ("SVTOP", "TVSOP"), "zh": ("STPVO", "TSPVO")}
_PUNCT = {"zh": ("。", "，"), "default": (".", ",")}

# Question templates by answer type: s subject, v finite verb, b English base form, o object.
_QUESTIONS = {
    "en": {"who": "Who {v} {o}?", "what": "What does {s} {b}?", "where": "Where does {s} {b} {o}?",
           "when": "When does {s} {b} {o}?"},
    "de": {"who": "Wer {v} {o}?", "what": "Was {v} {s}?", "where": "Wo {v} {s} {o}?", "when": "Wann {v} {s} {o}?"},
    "fr": {"who": "Qui {v} {o} ?", "what": "Qu'est-ce que {s} {v} ?", "where": "Où est-ce que {s} {v} {o} ?",
           "when": "Quand est-ce que {s} {v} {o} ?"},
    "es": {"who": "¿Quién {v} {o}?", "what": "¿Qué {v} {s}?", "where": "¿Dónde {v} {s} {o}?",
           "when": "¿Cuándo {v} {s} {o}?"},
    "zh": {"who": "谁{v}{o}？", "what": "{s}{v}什么？", "where": "{s}在哪里{v}{o}？", "when": "{s}什么时候{v}{o}？"},
}
_ANSWER_ROLE = {"who": "S", "what": "O", "where": "P", "when": "T"}

_SPLIT_PERCENT = {"train": 80, "dev": 10, "test": 10}
# Stories are drawn from a space far larger than this; the cap only keeps "too many" well defined.
_STORY_CAPACITY = {"train": 50_000, "dev": 10_000, "test": 10_000}
_STORY_TASKS = ("title_generation", "story_completion", "qa")


# ---------------------------------------------------------------------------------------------------
# Compiled lexicon: phrase = tuple of (token, tag).
# ---------------------------------------------------------------------------------------------------
def _phrase(cell: str) -> tuple[tuple[str, str], ...]:
    phrase = tuple(tuple(word.rsplit("/", 1)) for word in cell.split())
    assert all(tag in UPOS for _, tag in phrase), f"non-UPOS tag in lexicon cell {cell!r}"  # catches typos
    return phrase  # type: ignore[return-value]


def _table(rows) -> list[dict]:
    return [dict(zip(LANGUAGES, map(_phrase, row[:len(LANGUAGES)]))) for row in rows]


def _np_forms(cell: str) -> tuple:
    subj, obj, pron = (_phrase(part) for part in cell.split(";"))
    return subj, obj or subj, pron


SUBJECTS = [dict(zip(LANGUAGES, map(_np_forms, row))) for row in _SUBJECTS]
VERBS = [{lang: tuple(_phrase(p) for p in (cell.split("+") + [""])[:2]) for lang, cell in zip(LANGUAGES, row)}
         for row in _VERBS]
VERB_BASE = [row[5] for row in _VERBS]
OBJECTS, PLACES, TIMES = _table(_OBJECTS), _table(_PLACES), _table(_TIMES)
_THING_VERBS = tuple(i for i, row in enumerate(_VERBS) if "thing" in row[6].split())
_PERSON_VERBS = tuple(i for i, row in enumerate(_VERBS) if "person" in row[6].split())


class Rendered(NamedTuple):
    text: str
    tokens: list
    tags: list
    spans: dict  # role -> (start, end) character offsets in text


def _space_between(lang: str, prev: str, tok: str) -> bool:
    if lang == "zh" or prev.endswith("'") or prev == "¿":
        return False
    if tok in ("?", "!"):
        return lang == "fr"  # French typography puts a space before ? and !
    return tok not in (".", ",")


def _render(lang: str, parts, capitalize: bool = True) -> Rendered:
    text, tokens, tags, spans = "", [], [], {}
    for role, phrase in parts:
        start = None
        for tok, tag in phrase:
            if capitalize and not tokens:
                tok = tok[:1].upper() + tok[1:]
            if tokens and _space_between(lang, tokens[-1], tok):
                text += " "
            start = len(text) if start is None else start
            text += tok
            tokens.append(tok)
            tags.append(tag)
        if start is not None:
            spans[role] = (start, len(text))
    return Rendered(text, tokens, tags, spans)


def _plain(lang: str, phrase) -> str:
    return _render(lang, [("x", phrase)], capitalize=False).text


def _clause(lang: str, subj, verb, obj, place, time, front: bool = False) -> Rendered:
    """One sentence in `lang`'s word order; `verb` is (finite verb, preposition before the object)."""
    period, comma = _PUNCT.get(lang, _PUNCT["default"])
    slots = {"S": subj, "V": verb[0], "O": verb[1] + obj, "P": place, "T": time, ",": ((comma, "PUNCT"),)}
    order = _ORDER[lang][front]
    return _render(lang, [(role, slots[role]) for role in order] + [("end", ((period, "PUNCT"),))])


def _split_of(kind: str, key) -> str:
    bucket = zlib.crc32(f"{kind}:{key}".encode()) % 100
    for split in SPLITS:
        if bucket < _SPLIT_PERCENT[split]:
            return split
        bucket -= _SPLIT_PERCENT[split]
    raise AssertionError("split percentages must sum to 100")


@lru_cache(maxsize=None)
def _predicates(split: str) -> tuple:
    """(verb, object, place, time) combinations of `split`: the unit of the partition of sentences and stories."""
    space = itertools.product(_THING_VERBS, range(len(OBJECTS)), range(len(PLACES)), range(len(TIMES)))
    return tuple(key for key in space if _split_of("predicate", key) == split)


@lru_cache(maxsize=None)
def _pair_keys(split: str) -> tuple:
    # The unordered pair is the key, so a pair and its role swap (a negative paraphrase) share a split.
    space = itertools.product(itertools.combinations(range(len(SUBJECTS)), 2), _PERSON_VERBS,
                              range(len(PLACES)), range(len(TIMES)))
    return tuple(key for key in space if _split_of("pair", key) == split)


def _rng(seed: int, task: str, split: str, part: str = "") -> random.Random:
    return random.Random(f"demo_corpus|{seed}|{task}|{split}|{part}")


@lru_cache(maxsize=32)
def _shuffled_keys(task: str, split: str, seed: int) -> tuple:
    if task == "paraphrase":
        keys = list(_pair_keys(split))
    else:
        keys = [(subj, pred) for subj in range(len(SUBJECTS)) for pred in _predicates(split)]
    _rng(seed, task, split, "order").shuffle(keys)
    return tuple(keys)


def _capacity(task: str, split: str, seed: int) -> int:
    return _STORY_CAPACITY[split] if task in _STORY_TASKS else len(_shuffled_keys(task, split, seed))


def _story_plans(task: str, split: str, n: int, seed: int) -> list:
    """(subject, three predicates, question) with no verb/object/place/time repeated inside a story,
    so every question about the story has exactly one answer."""
    rng, preds = _rng(seed, task, split), _predicates(split)
    seen, plans = set(), []
    while len(plans) < n:
        subj = rng.randrange(len(SUBJECTS))
        story = tuple(rng.choice(preds) for _ in range(3))
        if any(len({pred[i] for pred in story}) < 3 for i in range(4)) or (subj, story) in seen:
            continue
        seen.add((subj, story))
        question = None
        if task == "qa":
            kind = rng.choice(sorted(_ANSWER_ROLE))
            # "Who ...?" is only unambiguous where the subject is spelled out, i.e. in the first sentence.
            question = (kind, 0 if kind == "who" else rng.randrange(3))
        plans.append((subj, story, question))
    return plans


def _plans(task: str, split: str, n: int, seed: int) -> list:
    if task in _STORY_TASKS:
        return _story_plans(task, split, n, seed)
    keys = _shuffled_keys(task, split, seed)[:n]
    rng = _rng(seed, task, split, "variation")
    if task == "paraphrase":
        plans = []
        for (a, b), verb, place, time in keys:
            if rng.random() < 0.5:
                a, b = b, a
            label = int(rng.random() < 0.5)
            front1 = rng.random() < 0.5
            # Positives only move the time adverb; negatives swap the roles and may move it as well,
            # so neither word overlap nor word order gives the label away.
            front2 = (not front1) if label else rng.random() < 0.5
            plans.append((a, b, verb, place, time, label, front1, front2))
        return plans
    return [(subj, pred, task == "pos" and rng.random() < 0.3) for subj, pred in keys]


# ---------------------------------------------------------------------------------------------------
# Rendering a plan in one language.
# ---------------------------------------------------------------------------------------------------
def _sentence(lang: str, subj: tuple, pred: tuple, front: bool = False) -> Rendered:
    verb, obj, place, time = pred
    return _clause(lang, subj, VERBS[verb][lang], OBJECTS[obj][lang], PLACES[place][lang], TIMES[time][lang], front)


def _story(lang: str, subj: int, story: tuple) -> list[Rendered]:
    nominative, _, pronoun = SUBJECTS[subj][lang]
    return [_sentence(lang, nominative if k == 0 else pronoun, pred) for k, pred in enumerate(story)]


def _join(lang: str, sentences: list[Rendered]) -> str:
    return ("" if lang == "zh" else " ").join(s.text for s in sentences)


def _title(lang: str, subj: int, pred: tuple) -> str:
    verb, prep = VERBS[pred[0]][lang]
    return _render(lang, [("S", SUBJECTS[subj][lang][0]), ("V", verb), ("O", prep + OBJECTS[pred[1]][lang])]).text


def _qa(lang: str, subj: int, story: tuple, question: tuple) -> dict:
    kind, k = question
    sentences = _story(lang, subj, story)
    sep = 0 if lang == "zh" else 1
    start, end = sentences[k].spans[_ANSWER_ROLE[kind]]
    offset = sum(len(s.text) + sep for s in sentences[:k])
    context = _join(lang, sentences)
    verb, prep = VERBS[story[k][0]][lang]
    text = _QUESTIONS[lang][kind].format(
        s=_plain(lang, SUBJECTS[subj][lang][0]), v=_plain(lang, verb), b=VERB_BASE[story[k][0]],
        o=_plain(lang, prep + OBJECTS[story[k][1]][lang]))
    answer = sentences[k].text[start:end]
    assert context[offset + start:offset + end] == answer, (context, answer)
    return {"context": context, "question": text, "answer_text": answer, "answer_start": offset + start}


def _record(task: str, lang: str, plan: tuple) -> dict:
    if task in _STORY_TASKS:
        subj, story, question = plan
        if task == "qa":
            return _qa(lang, subj, story, question)
        sentences = _story(lang, subj, story)
        if task == "title_generation":
            return {"document": _join(lang, sentences), "summary": _title(lang, subj, story[0])}
        return {"document": _join(lang, sentences[:2]), "summary": sentences[2].text}
    if task == "paraphrase":
        a, b, verb, place, time, label, front1, front2 = plan
        pred = (verb, place, time)
        first = _person_clause(lang, a, b, pred, front1)
        second = _person_clause(lang, a, b, pred, front2) if label else _person_clause(lang, b, a, pred, front2)
        return {"sentence1": first.text, "sentence2": second.text, "label": label}
    subj, pred, front = plan
    sentence = _sentence(lang, SUBJECTS[subj][lang][0], pred, front)
    if task == "pos":
        return {"tokens": sentence.tokens, "tags": sentence.tags}
    return {"text": sentence.text}


def _person_clause(lang: str, agent: int, patient: int, pred: tuple, front: bool) -> Rendered:
    verb, place, time = pred
    return _clause(lang, SUBJECTS[agent][lang][0], VERBS[verb][lang], SUBJECTS[patient][lang][1],
                   PLACES[place][lang], TIMES[time][lang], front)


def generate(task: str, lang: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """The first n records of `task` in `lang` for `split`. Deterministic given (task, split, n, seed):
    the same call twice gives equal lists, and record i of every language is the translation of record i
    of every other language (same "id", same label where the task has one). Raises ValueError naming the
    bad value for an unknown task, language or split, or n < 0, and when n exceeds what the split holds."""
    for name, value, allowed in (("task", task, TASKS), ("lang", lang, LANGUAGES), ("split", split, SPLITS)):
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    capacity = _capacity(task, split, seed)
    if n > capacity:
        raise ValueError(f"n={n} exceeds the {capacity} distinct records that task {task!r} split {split!r} "
                         "can provide")
    return [{"id": f"{task}-{split}-{i:06d}", **_record(task, lang, plan)}
            for i, plan in enumerate(_plans(task, split, n, seed))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print demo corpus records as JSON lines.")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--lang", required=True, choices=LANGUAGES)
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("-n", type=int, default=5, help="records to print (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="the corpus's generator seed (default 0)")
    args = parser.parse_args(argv)
    for record in generate(args.task, args.lang, args.split, args.n, args.seed):
        print(json.dumps(record, ensure_ascii=False))


if __name__ == "__main__":
    main()
