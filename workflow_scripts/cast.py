"""Stage 2, cast: normalised records to text-to-text pairs with the templates of paper Table 10.

Each output record keeps its source record under "record", so scoring can reach the gold labels.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli, tasks
from workflow_scripts.loaders import SPLITS
from workflow_scripts.files import read_jsonl, write_json, write_jsonl


def cast_records(kind_name: str, records: list[dict]) -> list[dict]:
    cast = tasks.kind(kind_name).cast
    return [{"id": r["id"], **cast(r), "record": r} for r in records]


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--in-dir", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    args = p.parse_args()
    counts = {}
    for split in SPLITS:
        records = read_jsonl(args.in_dir / f"{split}.jsonl")
        counts[split] = write_jsonl(args.out_dir / f"{split}.jsonl", cast_records(args.spec["kind"], records))
    write_json(args.out_dir / "meta.json", {"spec": args.spec, "counts": counts})


if __name__ == "__main__":
    cli.run(main)
