"""Stage 1, prepare: one split of one task's examples in one language, normalised and checked, as JSONL.

Keeps every example in the dataset's order; fine-tuning takes the first N of them per source language. Each split
is a job of its own, so that a new test set leaves the training split, and every run trained on it, in place.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli, loaders, tasks
from workflow_scripts.files import DataError, write_json, write_jsonl


def prepare(spec: dict) -> tuple[list[dict], dict]:
    """The split's records, and the loader's notes (what was dropped and why)."""
    where = f"task {spec['task']!r}, language {spec['lang']!r}, split {spec['split']!r}"
    try:
        records, notes = loaders.load(spec["dataset"], spec["lang"], spec["split"])
    except DataError as err:
        raise DataError(f"{where}: {err}") from err
    if not records:
        raise DataError(f"{where}: the split is empty")
    tasks.validate_records(tasks.kind(spec["kind"]), records, where)
    return records, notes


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="the split's JSONL; its .meta.json goes beside it")
    args = p.parse_args()
    records, notes = prepare(args.spec)
    count = write_jsonl(args.out, records)
    write_json(args.out.with_suffix(".meta.json"), {"spec": args.spec, "count": count, "notes": notes})


if __name__ == "__main__":
    cli.run(main)
