"""MTG story generation (SG) and title generation (TG) from an unpacked local archive."""
from __future__ import annotations

import json
from pathlib import Path

from workflow_scripts.files import DataError
from workflow_scripts.loaders.common import (describe, empty_text, finish, json_records, upstream_names,
                                             upstream_split)

# Unverified: MTG (Chen et al. 2022) ships as an archive (Google Drive) whose layout is not documented
# publicly. These are the layouts and field names tried, in order; `path` may instead be a file template
# with {lang} and {split}, and `columns` may name the fields.
MTG_TASK_DIRS = {"SG": ("SG", "sg", "story_generation", "story", "story_completion", "Story Generation"),
                 "TG": ("TG", "tg", "title_generation", "title", "Title Generation")}
MTG_RECORD_FILES = ("{lang}/{split}.{ext}", "{split}/{lang}.{ext}", "{split}.{lang}.{ext}", "{lang}.{split}.{ext}",
                    "{split}_{lang}.{ext}", "{lang}_{split}.{ext}", "{split}-{lang}.{ext}", "{lang}-{split}.{ext}")
MTG_PAIRED_FILES = ("{lang}/{split}.{side}", "{split}.{lang}.{side}", "{lang}.{split}.{side}", "{split}/{lang}.{side}")
MTG_SIDES = (("src", "tgt"), ("source", "target"))
MTG_DOCUMENT_FIELDS = ("document", "source", "src", "input", "context", "story", "article", "text", "passage",
                       "content")
MTG_SUMMARY_FIELDS = ("summary", "target", "tgt", "output", "ending", "story_ending", "title", "headline")
MTG_ID_FIELDS = ("id", "idx", "uid", "guid", "example_id")


def _mtg_fields(records: list[dict], dataset: dict, where: str, path: Path) -> tuple[str, str, str | None]:
    columns = dataset.get("columns") or {}
    keys = set(records[0]) if records else set()
    document = columns.get("document") or next((f for f in MTG_DOCUMENT_FIELDS if f in keys), None)
    summary = columns.get("summary") or next((f for f in MTG_SUMMARY_FIELDS if f in keys and f != document), None)
    ident = columns.get("id") or next((f for f in MTG_ID_FIELDS if f in keys), None)
    missing = [f"{ours} field {theirs!r}" for ours, theirs in (("document", document), ("summary", summary))
               if theirs and theirs not in keys]
    if document is None or summary is None or missing:
        raise DataError(f"{where}: {path}: records have fields {', '.join(sorted(keys)) or 'none'}; expected a "
                        f"document field (one of {', '.join(MTG_DOCUMENT_FIELDS)}) and a target field (one of "
                        f"{', '.join(MTG_SUMMARY_FIELDS)})" + (f"; missing {', '.join(missing)}" if missing else "")
                        + "; name them with dataset.columns: {document: <field>, summary: <field>}")
    return document, summary, ident


def _mtg_candidates(dataset: dict, lang: str, split: str) -> tuple[list, list, list]:
    """Files to try: JSON(-lines) records, line-aligned source/target text pairs, one JSON per split."""
    root = Path(dataset["path"])
    # The task's own folder only where it exists: in an archive of both tasks a file at the root is neither
    # task's, and reading it first gave SG and TG the same examples. The root is the task folder otherwise.
    task_dirs = [root / d for d in MTG_TASK_DIRS.get(str(dataset.get("name", "")).upper(), ())]
    bases = [d for d in task_dirs if d.is_dir()] or [root]
    names = upstream_names(dataset, split)
    singles = [base / pattern.format(lang=lang, split=name, ext=ext)
               for base in bases for name in names for ext in ("jsonl", "json") for pattern in MTG_RECORD_FILES]
    pairs = [(base / pattern.format(lang=lang, split=name, side=src), base / pattern.format(lang=lang, split=name,
                                                                                            side=tgt))
             for base in bases for name in names for src, tgt in MTG_SIDES for pattern in MTG_PAIRED_FILES]
    multi = [base / f"{name}.json" for base in bases for name in names]
    return singles, pairs, multi


def local_mtg_files(dataset: dict, lang: str, split: str) -> list[Path]:
    """The files of an unpacked archive (dataset.path, a directory) that one language and split may read: every
    layout's file that exists, so that the one the loader picks is among them."""
    singles, pairs, multi = _mtg_candidates(dataset, lang, split)
    return [path for path in [*singles, *(side for pair in pairs for side in pair), *multi] if path.is_file()]


def _holds_language(path: Path, lang: str) -> bool:
    try:
        whole = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(whole, dict) and isinstance(whole.get(lang), list)


def load_mtg(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """MTG story generation (SG: story context -> ending) or title generation (TG: article -> title).

    The five languages are multi-way parallel: when the files carry no id field, the id is the split and the
    line number, which names the same example in every language.
    """
    where = describe(dataset, lang, split)
    if not dataset.get("path"):
        raise DataError(f"{where}: the MTG benchmark is distributed as an archive, not on the hub; unpack it and "
                        f"set dataset.path to its task directory (or a file template with {{lang}} and {{split}})")
    up_split, part, spec = upstream_split(dataset, split, split, where)
    notes: dict = {"upstream_split": spec}
    template = dataset["path"]
    if "{lang}" in template or "{split}" in template:
        # the names the digest fingerprints: dataset.splits' name, else the dev aliases (dev, valid, ...)
        singles = [Path(template.format(lang=lang, split=name)) for name in upstream_names(dataset, split)]
        pairs, multi = [], []
    else:
        if not Path(template).is_dir():
            raise DataError(f"{where}: dataset.path {template!r} does not exist; unpack the MTG archive and point "
                            f"dataset.path at it")
        singles, pairs, multi = _mtg_candidates(dataset, lang, split)
    single = next((p for p in singles if p.is_file()), None)
    pair = next((p for p in pairs if p[0].is_file() and p[1].is_file()), None)
    if single is None and pair is None:  # one JSON file per split holding {lang: [records]}
        single = next((p for p in multi if p.is_file() and _holds_language(p, lang)), None)
    if single is not None:
        rows = json_records(single, lang, where)
        if rows and all(f"sentence{i}" in rows[0] for i in range(1, 6)) and not dataset.get("columns"):
            # ROCStories-style rows: the first four sentences are the context, the fifth the ending.
            rows = [{**r, "document": " ".join(str(r[f"sentence{i}"]) for i in range(1, 5)),
                     "summary": str(r["sentence5"])} for r in rows]
        document, summary, ident = _mtg_fields(rows, dataset, where, single)
        notes["file"], read = single.name, single
    elif pair is not None:
        sides = []
        for path in pair:
            try:
                lines = path.read_text(encoding="utf-8-sig").rstrip("\n").split("\n")
                sides.append([line.rstrip("\r") for line in lines])
            except (OSError, UnicodeDecodeError) as err:
                raise DataError(f"{where}: cannot read {path}: {err}") from err
        if len(sides[0]) != len(sides[1]):
            raise DataError(f"{where}: {pair[0]} has {len(sides[0])} lines but {pair[1]} has {len(sides[1])}; "
                            f"source and target files must be line-aligned")
        rows = [{"document": d, "summary": s} for d, s in zip(*sides)]
        document, summary, ident = "document", "summary", None
        notes["file"], read = f"{pair[0].name}+{pair[1].name}", pair[0]
    else:
        root = Path(template if "{" not in template else template.split("{", 1)[0] or ".")
        present = (sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:15]
                   if root.is_dir() else [])
        tried = [str(p) for p in singles[:6]] + [f"{a} + {b}" for a, b in pairs[:2]] + [str(p) for p in multi[:1]]
        raise DataError(f"{where}: no MTG data file for this language and split. Expected JSON lines (or a JSON "
                        f"list, or {{lang: list}}) such as {', '.join(tried)} ... "
                        f"({len(singles) + len(pairs) + len(multi)} layouts tried); found "
                        f"{', '.join(present) or 'no files'}. Set dataset.path to a file template such as "
                        f"/data/MTG/SG/{{lang}}/{{split}}.jsonl (and dataset.splits for other split names)")
    marked = []
    for index, row in enumerate(rows):
        key = row.get(ident) if ident else None
        if key is None:  # a row-number id: xlrs.task_parallel_rows then checks that every language has these rows
            notes["ids_from_rows_of"] = str(read)
        record = {"id": str(key) if key is not None else f"{split}-{index:06d}",
                  "document": str(row.get(document) or ""), "summary": str(row.get(summary) or "")}
        marked.append((record, "empty" if empty_text(record) else None))
    return finish(marked, part, dataset, split, where, notes, "no targets")
