"""Stage 2, cast: normalised records to text-to-text pairs with the templates of paper Table 10.

Each output record keeps its source record under "record", so scoring can reach the gold labels.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli, tasks
from workflow_scripts.files import read_jsonl, write_json, write_jsonl


def cast_records(kind_name: str, records: list[dict]) -> list[dict]:
    cast = tasks.kind(kind_name).cast
    return [{"id": r["id"], **cast(r), "record": r} for r in records]


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--in", dest="source", type=Path, required=True, metavar="FILE",
                   help="one split's prepared records (JSONL)")
    p.add_argument("--out", type=Path, required=True, help="the cast JSONL; its .meta.json goes beside it")
    args = p.parse_args()
    count = write_jsonl(args.out, cast_records(args.spec["kind"], read_jsonl(args.source)))
    write_json(args.out.with_suffix(".meta.json"), {"spec": args.spec, "count": count})


if __name__ == "__main__":
    cli.run(main)
