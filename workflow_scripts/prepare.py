"""Stage 1, prepare: one task's examples in one language, normalised and checked, as train/dev/test JSONL.

Keeps every example in the dataset's order; fine-tuning takes the first N of them per source language.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli, loaders, tasks
from workflow_scripts.files import DataError, write_json, write_jsonl


def prepare(spec: dict) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Every split's records, and each split's loader notes (what was dropped and why)."""
    task_kind = tasks.kind(spec["kind"])
    splits, notes = {}, {}
    for split in loaders.SPLITS:
        where = f"task {spec['task']!r}, language {spec['lang']!r}, split {split!r}"
        try:
            records, notes[split] = loaders.load(spec["dataset"], spec["lang"], split)
        except DataError as err:
            raise DataError(f"{where}: {err}") from err
        if not records:
            raise DataError(f"{where}: the split is empty")
        tasks.validate_records(task_kind, records, where)
        splits[split] = records
    return splits, notes


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--out-dir", type=Path, required=True)
    args = p.parse_args()
    spec = args.spec
    splits, notes = prepare(spec)
    counts = {split: write_jsonl(args.out_dir / f"{split}.jsonl", records) for split, records in splits.items()}
    write_json(args.out_dir / "meta.json", {"spec": spec, "counts": counts, "notes": notes})


if __name__ == "__main__":
    cli.run(main)
