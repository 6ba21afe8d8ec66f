"""Stage 7, select: which checkpoint to test on a target language, by three rules (paper §6.2).

en-dev: the best score on the source languages' dev sets (true zero-shot; mean over sources);
cos-sim: the lowest last-layer XLRS between the sources and the target (no target data needed); the highest
         for tasks that transfer better as XLRS rises (tasks.TaskKind.cos_sim, or a task's `cos_sim` key);
tgt-dev: the best score on the target's own dev set (an oracle upper bound).
Ties go to the earliest checkpoint. cos-sim is undefined when the target is the only source.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli
from workflow_scripts.files import REWRITE, DataError, read_tsv, write_json
from workflow_scripts.tasks import PAPER_COS_SIM


def best_step(scores: dict[int, float], lowest: bool = False) -> int | None:
    if not scores:
        return None
    sign = 1 if lowest else -1
    return min(scores, key=lambda step: (sign * scores[step], step))


def select(source_dev: list, target_dev, xlrs, metric: str, cos_sim_end: str = PAPER_COS_SIM) -> dict:
    """source_dev: one score table per source; target_dev: a score table; xlrs: the XLRS table or None;
    cos_sim_end: "lowest" or "highest", the end of the XLRS range cos-sim picks."""
    import pandas as pd

    if cos_sim_end not in ("lowest", "highest"):
        raise ValueError(f"cos_sim must be 'lowest' or 'highest', not {cos_sim_end!r}")
    sources = pd.concat(source_dev)
    en_dev = sources.groupby("step")[metric].mean().to_dict()
    tgt_dev = target_dev.set_index("step")[metric].to_dict()
    mean_xlrs = {}
    if xlrs is not None:
        last = xlrs[xlrs["last_layer"].astype(str).str.lower() == "true"]
        last = last[last["step"].isin(list(tgt_dev))]
        mean_xlrs = last.groupby("step")["xlrs"].mean().to_dict()
    return {"en-dev": best_step(en_dev), "cos-sim": best_step(mean_xlrs, lowest=cos_sim_end == "lowest"),
            "tgt-dev": best_step(tgt_dev)}


def dev_scores(path: Path, metric: str):
    """A dev score table, a row per checkpoint: one without rows would leave a rule nothing to pick, unsaid."""
    table = read_tsv(path, numbers=("step", metric))
    if table.empty:
        raise DataError(f"{path}: no scores in it; {REWRITE}")
    return table


def main() -> None:
    p = cli.parser(__doc__)
    p.add_argument("--source-dev", type=Path, nargs="+", required=True,
                   help="score's dev TSV of each source language (en-dev)")
    p.add_argument("--target-dev", type=Path, required=True, help="score's dev TSV of the target language (tgt-dev)")
    p.add_argument("--xlrs", type=Path, help="xlrs's TSV of the target (cos-sim; without it cos-sim picks nothing)")
    p.add_argument("--out", type=Path, required=True, help="JSON: the step each rule picks, and the spec")
    args = p.parse_args()
    cos_sim_end = args.spec.get("cos_sim", PAPER_COS_SIM)
    metric = args.spec["metric"]
    source_dev = [dev_scores(path, metric) for path in args.source_dev]
    xlrs = read_tsv(args.xlrs, ("last_layer",), numbers=("step", "xlrs")) if args.xlrs else None
    chosen = select(source_dev, dev_scores(args.target_dev, metric), xlrs, metric, cos_sim_end)
    chosen = {rule: (None if step is None else int(step)) for rule, step in chosen.items()}
    write_json(args.out, {"spec": args.spec, "selection": chosen, "cos_sim": cos_sim_end})


if __name__ == "__main__":
    cli.run(main)
