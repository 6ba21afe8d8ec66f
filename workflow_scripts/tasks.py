"""Task kinds: the record fields, the text-to-text template (paper Table 10) and the metric of each.

A task in config.yaml names a kind and a dataset; adding a kind is one entry in KINDS, with its cast function
and, unless its output is text scored by SP-ROUGE, its score function, and its new fields' types in TEXT_FIELDS,
WORD_FIELDS or NUMBER_FIELDS, all in this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from workflow_scripts import metrics
from workflow_scripts.errors import UserError
from workflow_scripts.files import DataError

# cos-sim's end of the XLRS range in the paper (§6.2). A select spec names its end only when it differs, so the
# digests of generation runs, which use this end, are those they had before the end could be chosen.
PAPER_COS_SIM = "lowest"
SENTINEL = "<extra_id_{}>"
# mT5 has 100 sentinels, so a tagged sentence can carry at most 100 tokens.
MAX_TAGGED_TOKENS = 100
SPLITS = ("train", "dev", "test")  # every task's data, prepared a split at a time
# The tagging kind's 17 UPOS tags, in the order of google/xtreme's `udpos.*` `pos_tags` ClassLabel (its README
# dataset_info: '0': ADJ ... '15': VERB, '16': X; the alphabetical UD v2 list).
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")


def sentinel(i: int) -> str:
    return SENTINEL.format(i)


# The generation template's end, after the document: an input cut to max_source_length keeps it (modeling.tokenize),
# or the model would never see the sentinel its target starts with.
GENERATION_TAIL = f" title: {sentinel(0)}"


def cast_generation(record: dict) -> dict:
    return {"input": f"story: {record['document']}{GENERATION_TAIL}",
            "target": f"{sentinel(0)}{record['summary']}"}


def cast_tagging(record: dict) -> dict:
    # Raman et al. (2022) sentinel + tag: each input token is preceded by its own sentinel and the
    # output names each sentinel's tag, so the model never has to copy the words.
    tokens = record["tokens"][:MAX_TAGGED_TOKENS]
    tags = record["tags"][:MAX_TAGGED_TOKENS]
    return {"input": " ".join(f"{sentinel(i)}{t}" for i, t in enumerate(tokens)),
            "target": " ".join(f"{sentinel(i)}{t}" for i, t in enumerate(tags))}


def cast_paraphrase(record: dict) -> dict:
    # Cloze (Schick & Schütze 2021): the sentinel between the two sentences is filled with Yes./No.
    answer = "Yes." if int(record["label"]) == 1 else "No."
    return {"input": f"{record['sentence1']} {sentinel(0)}{record['sentence2']}",
            "target": f"{sentinel(0)}{answer}"}


def cast_qa(record: dict) -> dict:
    # Table 10 shows the question and its sentinel; the GoldP passage follows them.
    return {"input": f"{record['question']} {sentinel(0)} {record['context']}",
            "target": f"{sentinel(0)}{record['answer_text']}"}


def score_tagging(predictions: list[str], gold: list[dict]) -> dict:
    return metrics.pos_accuracy(predictions, [g["tags"][:MAX_TAGGED_TOKENS] for g in gold])


def score_paraphrase(predictions: list[str], gold: list[dict]) -> dict:
    return metrics.paraphrase_scores(predictions, [g["label"] for g in gold])


def score_qa(predictions: list[str], gold: list[dict]) -> dict:
    """EM/F1 against the best of a question's answers: its target's, and any other_answers its loader kept."""
    return metrics.squad_scores([metrics.strip_sentinels(p) for p in predictions],
                                [[g["answer_text"], *g.get("other_answers", [])] for g in gold])


def check_tagging(record: dict) -> str | None:
    if len(record["tokens"]) != len(record["tags"]):
        return f"{len(record['tokens'])} tokens but {len(record['tags'])} tags"
    if not record["tokens"]:
        return "no tokens"
    return None


def check_qa(record: dict) -> str | None:
    try:
        start, answer = int(record["answer_start"]), record["answer_text"]
    except (TypeError, ValueError):
        return f"answer_start {record['answer_start']!r} is not a character offset"
    if not 0 <= start <= len(record["context"]) - len(answer) \
            or record["context"][start:start + len(answer)] != answer:
        return f"answer {answer!r} at {start} is not a span of its context"
    return None


def check_paraphrase(record: dict) -> str | None:
    if str(record["label"]) not in ("0", "1"):
        return f"label {record['label']!r} is neither 0 nor 1"
    return None


@dataclass(frozen=True)
class TaskKind:
    name: str
    fields: tuple[str, ...]
    cast: Callable[[dict], dict]
    metric: str                      # the score checkpoint selection and tables use
    # Which end of the XLRS range cos-sim selection picks. The paper selects the lowest for generation (§6.2);
    # tasks whose labels overlap across languages transfer better as XLRS rises (§5.6, Figure 5: POS, PAWS-X,
    # TyDiQA), so for them, where the paper does not evaluate cos-sim, it picks the highest.
    cos_sim: str
    check: Callable[[dict], str | None] = lambda record: None
    tail: str = ""                   # the template's text after its last field, which a cut input keeps
    # The metrics of a checkpoint's predictions against the gold records; None: the output is text, scored by
    # SP-ROUGE against the record's `reference` field (and by language ID on test sets).
    score: Callable[[list[str], list[dict]], dict] | None = None
    reference: str = ""
    sentinels: int = 1               # <extra_id_N> tokens the template uses, which the tokenizer must have
    template_version: int = 1        # bump when `cast` changes what it writes: this kind's tasks are cast anew
    score_version: int = 1           # bump when `score` changes what it gives: this kind's scores are computed anew


KINDS: dict[str, TaskKind] = {
    "generation": TaskKind("generation", ("id", "document", "summary"), cast_generation, "rougeL", PAPER_COS_SIM,
                           tail=GENERATION_TAIL, reference="summary"),
    "tagging": TaskKind("tagging", ("id", "tokens", "tags"), cast_tagging, "accuracy", "highest", check_tagging,
                        score=score_tagging, sentinels=MAX_TAGGED_TOKENS),
    "paraphrase": TaskKind("paraphrase", ("id", "sentence1", "sentence2", "label"), cast_paraphrase,
                           "accuracy", "highest", check_paraphrase, score=score_paraphrase,
                           score_version=2),  # 2: labels read as text ("1") are 1, not unparseable
    "qa": TaskKind("qa", ("id", "context", "question", "answer_text", "answer_start"), cast_qa, "f1", "highest",
                   check_qa, score=score_qa),
}


def kind(name: str) -> TaskKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"unknown task kind {name!r}; known: {', '.join(KINDS)}") from None


TEXT_FIELDS = ("document", "summary", "sentence1", "sentence2", "context", "question", "answer_text")
WORD_FIELDS = ("tokens", "tags")
NUMBER_FIELDS = ("label", "answer_start")  # a table's cell holds them as text


class _FieldsRead(dict):
    """A record that remembers the fields it was asked for and lacks."""

    def __init__(self, *args):
        super().__init__(*args)
        self.lacked: list = []

    def __missing__(self, field):
        self.lacked.append(field)
        raise KeyError(field)


def template_problem(task_kind: TaskKind) -> str | None:
    """A kind's template tried on a record of its own fields: one that reads a field the kind does not declare (a
    typo in a new kind) is named by the config check, not by a KeyError in every cast job. Only a field the record
    lacks counts: the stand-in values may fail a template in other ways (a label looked up in a table, a number
    parsed) that real records do not, and the cast jobs check those."""
    record = _FieldsRead({field: ["x"] if field in WORD_FIELDS else 0 if field in NUMBER_FIELDS else "x"
                          for field in task_kind.fields})
    try:
        task_kind.cast(record)
    except KeyError as err:
        if err.args and err.args[0] in record.lacked:
            return (f"its template reads field {err.args[0]!r}, which is not among its fields "
                    f"({', '.join(task_kind.fields)})")
    except Exception:  # any other failure on the stand-in values: the cast jobs meet real records
        pass
    return None


def field_problem(record: dict, fields: tuple[str, ...]) -> str | None:
    """A null, a number or a string where the templates want text or a list of words: cast would write
    'None' into the text, or count the characters of a string as its words."""
    for field in fields:
        value = record[field]
        if field == "id" and (isinstance(value, bool) or not isinstance(value, (str, int)) or value == ""):
            return f"its id must be text or a whole number, not {value!r:.40}"  # ids pair languages' examples
        if field in TEXT_FIELDS and value is None:
            return f"{field} is empty (null)"
        if field in TEXT_FIELDS and not isinstance(value, str):
            return f"{field} is not text but {type(value).__name__} {value!r:.40}"
        if field in WORD_FIELDS and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"{field} must be a list of strings, not {value!r:.60}"
    return None


def validate_records(task_kind: TaskKind, records: list[dict], where: str, columns_hint: str = "") -> None:
    """Raise DataError naming `where` and the example id for the first malformed record; columns_hint ends the
    message of a record that lacks a field (how the data's own columns are named as ours)."""
    for number, record in enumerate(records, start=1):
        missing = [f for f in task_kind.fields if f not in record]
        if missing:
            raise DataError(f"{where}: record {number} lacks column(s) {', '.join(missing)} (it has "
                            f"{', '.join(record) or 'none'}){columns_hint}")
        problem = field_problem(record, task_kind.fields) or task_kind.check(record)
        if problem:
            raise DataError(f"{where}: example {record['id']!r}: {problem}")
