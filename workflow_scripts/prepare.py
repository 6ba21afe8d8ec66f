"""Stage 1, prepare: one split of one task's examples in one language, normalised and checked, as JSONL.

Keeps every example in the dataset's order; fine-tuning takes the first N of them per source language. Each split
is a job of its own, so that a new test set leaves the training split, and every run trained on it, in place.
"""
from __future__ import annotations

import logging
from pathlib import Path

from workflow_scripts import cli, loaders, tasks
from workflow_scripts.files import DataError, write_json, write_jsonl


def prepare(spec: dict) -> tuple[list[dict], dict]:
    """The split's records, and the loader's notes (what was dropped and why)."""
    where = f"task {spec['task']!r}, language {spec['lang']!r}, split {spec['split']!r}"
    try:
        records, notes = loaders.load(spec["dataset"], spec["lang"], spec["split"], tasks.kind(spec["kind"]).fields)
    except DataError as err:  # a loader's message that names the language and split needs only the task
        named = f"language {spec['lang']!r}, split {spec['split']!r}" in str(err)
        raise DataError(f"task {spec['task']!r}: {err}" if named else f"{where}: {err}") from err
    where += f" ({source_of(spec['dataset'], spec['lang'], spec['split'])})"
    if not records:
        raise DataError(f"{where}: the split is empty")
    loader = spec["dataset"]["loader"]
    if loader == "jsonl":  # jsonl reads our names only: say where other names are mapped
        hint = "; a jsonl record holds the kind's fields by name: rename them, or read the file with loader 'files'" \
               " and dataset.columns (our field: their column)"
    elif loader in loaders.MAPS_COLUMNS:
        hint = "; name the file's columns with dataset.columns (our field: their column)"
    else:
        hint = ""
    tasks.validate_records(tasks.kind(spec["kind"]), records, where, hint)
    repeated = loaders.repeated_ids(records)
    if repeated:  # harmless to training and scoring; pairing by id (XLRS, the label-overlap d) refuses or keeps one
        notes["repeated_ids"] = len(repeated)
        logging.getLogger("prepare").warning("%s: %d id(s) repeat (%s); ids pair a language's examples with "
                                             "another's", where, len(repeated),
                                             ", ".join(repeated[:5]) + (", ..." if len(repeated) > 5 else ""))
    return records, notes


def source_of(dataset: dict, lang: str, split: str) -> str:
    """Where a split's records come from, for messages: its file (a template's {split} kept where the loader
    tries several names, as MTG's dev/valid), the dataset directory, the hub id or the corpus."""
    path = dataset.get("path")
    if path:
        names = loaders.upstream_names(dataset, split)
        path = path.replace("{lang}", lang)
        return path.replace("{split}", names[0]) if len(names) == 1 else path
    return dataset.get("hub_id") or f"{dataset['loader']} {dataset.get('name', '')}".strip()


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="the split's JSONL; its .meta.json goes beside it")
    args = p.parse_args()
    records, notes = prepare(args.spec)
    count = write_jsonl(args.out, records)
    write_json(args.out.with_suffix(".meta.json"), {"spec": args.spec, "count": count, "notes": notes})
    logging.getLogger("prepare").info("%d records of %s %s %s%s", count, args.spec["task"], args.spec["lang"],
                                      args.spec["split"], "".join(f"; {k}: {v}" for k, v in notes.items()))


if __name__ == "__main__":
    cli.run(main)
