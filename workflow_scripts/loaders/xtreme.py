"""google/xtreme: udpos -> tagging, pawsx -> paraphrase, tydiqa -> qa."""
from __future__ import annotations

import hashlib
from pathlib import Path

from workflow_scripts.files import DataError
from workflow_scripts.loaders.common import (DEFAULT_HUB_IDS, class_names, describe, finish, ns_placeholder,
                                             upstream_split)
from workflow_scripts.loaders.hub import HUB_SPLITS, fetch, local_parquet_files, require_columns
from workflow_scripts.tasks import UPOS  # names a parquet file's tag integers where it has no feature metadata


# google/xtreme config names: udpos.<Language> (the 33 XTREME UD languages), PAWS-X.<code>, tydiqa.
XTREME_UDPOS = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}
XTREME_PAWSX = ("de", "en", "es", "fr", "ja", "ko", "zh")
# TyDiQA-GoldP is one multilingual config; an example's language is the prefix of its id ("english-...").
XTREME_TYDIQA = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
                 "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
XTREME_COLUMNS = {"udpos": ("tokens", "pos_tags"), "pawsx": ("sentence1", "sentence2", "label"),
                  "tydiqa": ("id", "context", "question", "answers")}
# Alternative hub repositories that hold the same data, and their per-language config.
XTREME_ALTERNATIVES = {"google-research-datasets/paws-x": "{lang}",
                       "google-research-datasets/tydiqa": "secondary_task"}


def _xtreme_config(dataset: dict, name: str, hub_id: str, lang: str, where: str) -> str:
    if dataset.get("config"):
        return dataset["config"].format(lang=lang)
    if hub_id in XTREME_ALTERNATIVES:
        return XTREME_ALTERNATIVES[hub_id].format(lang=lang)
    if name == "udpos":
        if lang not in XTREME_UDPOS:
            raise DataError(f"{where}: XTREME UDPOS has no language {lang!r} (it has "
                            f"{', '.join(sorted(XTREME_UDPOS))}); or name the config with dataset.config")
        return f"udpos.{XTREME_UDPOS[lang]}"
    if name == "pawsx":
        if lang not in XTREME_PAWSX:
            raise DataError(f"{where}: PAWS-X has no language {lang!r} (it has {', '.join(XTREME_PAWSX)})")
        return f"PAWS-X.{lang}"
    return "tydiqa"


def _udpos_example(row: dict, names: list[str]) -> tuple[dict, str | None]:
    tags = []
    for tag in row["pos_tags"] or []:
        if isinstance(tag, str):
            tags.append(tag)
        elif tag is None or not 0 <= int(tag) < len(names):
            return {"tokens": list(row["tokens"] or []), "tags": []}, "unlabelled"
        else:
            tags.append(names[int(tag)])
    tokens = list(row["tokens"] or [])
    return {"tokens": tokens, "tags": tags}, "empty" if not tokens else "unlabelled" if not tags else None


def _udpos_key(record: dict) -> tuple:
    # Upstream order is not guaranteed; a content hash is a stable order that does not put all the
    # sentences that start with "A" first (fine-tuning takes the first N examples).
    text = "\x1f".join(record["tokens"]) + "\x1e" + "\x1f".join(record["tags"])
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), record["tokens"], record["tags"]


def _pawsx_example(row: dict, index: int, up_split: str, names: list[str] | None) -> tuple[dict, str | None]:
    label, problem = row["label"], None
    if isinstance(label, int) and names and 0 <= label < len(names):
        label = names[label]  # google-research-datasets/paws-x: ClassLabel names "0", "1"
    label = str(label).strip() if label is not None else ""
    record = {"id": str(row["id"]) if row.get("id") is not None else f"{up_split}-{index:06d}",
              "sentence1": row["sentence1"] or "", "sentence2": row["sentence2"] or "",
              "label": int(label) if label in ("0", "1") else -1}
    if ns_placeholder(record):
        problem = "ns_placeholders"
    elif record["label"] == -1:
        problem = "unlabelled"
    return record, problem


def _tydiqa_example(row: dict) -> tuple[dict, str | None]:
    answers = row["answers"] or {}
    if isinstance(answers, list):  # a list of {"text", "answer_start"} structs
        texts = [a.get("text") for a in answers]
        starts = [a.get("answer_start") for a in answers]
    else:  # Sequence({"text", "answer_start"}): a struct of lists
        texts, starts = list(answers.get("text") or []), list(answers.get("answer_start") or [])
    record = {"id": str(row["id"]), "context": row["context"] or "", "question": row["question"] or "",
              "answer_text": "", "answer_start": -1}
    if not texts or not starts or texts[0] is None or starts[0] is None or int(starts[0]) < 0:
        return record, "unlabelled"
    text, start = texts[0], int(starts[0])
    record.update(answer_text=text, answer_start=start)
    others = list(dict.fromkeys(t for t in texts[1:] if t and t != text))
    if others:  # SQuAD-style scoring takes the best match over every annotated answer; training uses the first
        record["other_answers"] = others
    context = record["context"]
    if context[start:start + len(text)] != text:
        found = [i for i in range(len(context)) if context.startswith(text, i)]
        if not found:
            return record, "answer_not_in_context"
        record["answer_start"] = min(found, key=lambda i: (abs(i - start), i))
        return record, "fixed"
    return record, None


def _xtreme_source(dataset: dict, lang: str, split: str) -> tuple[str, str, str, tuple]:
    """(where, hub id, config, (upstream split, slice, spec)) of one language and split."""
    where = describe(dataset, lang, split)
    name = dataset.get("name")
    if name not in XTREME_COLUMNS:
        raise DataError(f"{where}: dataset.name must be one of {', '.join(XTREME_COLUMNS)}, not {name!r}")
    hub_id = dataset.get("hub_id") or DEFAULT_HUB_IDS["xtreme"]
    return (where, hub_id, _xtreme_config(dataset, name, hub_id, lang, where),
            upstream_split(dataset, split, HUB_SPLITS[split], where))


def local_xtreme_files(dataset: dict, lang: str, split: str) -> list[Path]:
    """The files of a local copy (dataset.path) that one language and split read."""
    _, _, config, (up_split, _, _) = _xtreme_source(dataset, lang, split)
    return local_parquet_files(Path(dataset["path"]), config, up_split)[0]


def load_xtreme(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """google/xtreme (or a local copy with its layout): udpos -> tagging, pawsx -> paraphrase, tydiqa -> qa."""
    where, hub_id, config, (up_split, part, spec) = _xtreme_source(dataset, lang, split)
    name = dataset["name"]
    table, features, source = fetch(dataset, hub_id, config, up_split, where)
    require_columns(table.column_names, XTREME_COLUMNS[name], where, source)
    notes: dict = {"upstream_split": spec}
    rows = table.select(list(XTREME_COLUMNS[name]) + (["id"] if "id" in table.column_names and name == "pawsx"
                                                      else [])).to_pylist()
    if name == "udpos":
        names = class_names(features.get("pos_tags")) or list(UPOS)
        marked = [_udpos_example(row, names) for row in rows]
        marked.sort(key=lambda item: _udpos_key(item[0]))
        # UD treebanks are not translations of each other: an id of its own language pairs no sentence across
        # languages (aggregate's label overlap pairs examples by id)
        marked = [({"id": f"{lang}-{up_split}-{n:06d}", **record}, problem)
                  for n, (record, problem) in enumerate(marked)]
        hint = "XTREME's own UDPOS test files carry no tags"
    elif name == "pawsx":
        names = class_names(features.get("label"))
        marked = [_pawsx_example(row, i, up_split, names) for i, row in enumerate(rows)]
        if any(row.get("id") is None for row in rows):  # row-number ids: see xlrs.task_parallel_rows
            notes["ids_from_rows_of"] = source
        hint = "XTREME's own PAWS-X test files carry no labels"
    else:
        if lang not in XTREME_TYDIQA:
            raise DataError(f"{where}: TyDiQA-GoldP has no language {lang!r} (it has "
                            f"{', '.join(sorted(XTREME_TYDIQA))})")
        prefix = f"{XTREME_TYDIQA[lang]}-"
        kept = [row for row in rows if str(row["id"]).startswith(prefix)]
        notes["rows_other_languages"] = len(rows) - len(kept)
        if not kept:
            seen = sorted({str(row["id"]).split("-", 1)[0] for row in rows})[:12]
            raise DataError(f"{where}: no example id in {source} starts with {prefix!r} (prefixes seen: "
                            f"{', '.join(seen) or 'none'})")
        marked = [_tydiqa_example(row) for row in kept]
        fixed = sum(problem == "fixed" for _, problem in marked)
        if fixed:
            notes["answer_start_fixed"] = fixed
        marked = [(record, None if problem == "fixed" else problem) for record, problem in marked]
        hint = "XTREME's own TyDiQA files strip the answers"
    return finish(marked, part, dataset, split, where, notes, hint)
