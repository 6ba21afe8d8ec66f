"""Stage 6, score: task metrics, SP-ROUGE and language ID of one language's decodes, per checkpoint.

generation: SP-ROUGE-1/2/L (F x100, pieces of the model's own tokenizer) and, on test sets, fastText LID of the
target and each source language with the accidental-translation share; tagging: token accuracy; paraphrase:
accuracy and F1; qa: SQuAD-style F1/EM. Empty predictions score zero and never crash.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts import cli, metrics
from workflow_scripts.files import read_jsonl
from workflow_scripts.tasks import kind as task_kind, validate_records


def score_step(kind: str, records: list[dict], spec: dict, tokenizer=None, lid_model=None) -> dict:
    """One checkpoint's predictions: the kind's own metrics, or for text (tasks.TaskKind.reference) SP-ROUGE and,
    on test sets, language ID."""
    scored_as = task_kind(kind)
    predictions = [r["prediction"] for r in records]
    gold = [r["record"] for r in records]
    row = {"n": len(records), "n_empty": sum(not metrics.strip_sentinels(p) for p in predictions)}
    if scored_as.score is not None:
        row.update(scored_as.score(predictions, gold))
        return row
    texts = [metrics.strip_sentinels(p) for p in predictions]
    row.update(metrics.sp_rouge(texts, [g[scored_as.reference] for g in gold], tokenizer,
                                variants=("rouge1", "rouge2", spec["rouge_l"])))
    if "lid_model" in spec:  # test sets only: Table 9 reads the selected checkpoints' test outputs
        lid = metrics.lid_summary(lid_model, texts, spec["lang"], spec["sources"])
        row.update({k: v for k, v in lid.items() if k != "n"})
    return row


def score_file(decodes: list[dict], spec: dict, tokenizer=None, lid_model=None) -> list[dict]:
    if "lid_model" in spec:
        metrics.warn_unlabelled(lid_model, [spec["lang"], *spec["sources"]])
    by_step: dict[int, list[dict]] = {}
    for record in decodes:
        by_step.setdefault(record["step"], []).append(record)
    return [{"step": step, "lang": spec["lang"], **score_step(spec["kind"], records, spec, tokenizer, lid_model)}
            for step, records in sorted(by_step.items())]


def main() -> None:
    import pandas as pd

    from workflow_scripts.files import write_json, write_tsv

    p = cli.parser(__doc__)
    p.add_argument("--decodes", type=Path, required=True, help="decode's JSONL of one language and split")
    cli.add_model(p, "whose tokenizer SP-ROUGE uses")
    p.add_argument("--out", type=Path, required=True, help="TSV: the scores per checkpoint step")
    args = p.parse_args()
    spec = args.spec
    decodes = read_jsonl(args.decodes, required=("step", "prediction", "record"))
    gold = [r["record"] for r in decodes]
    validate_records(task_kind(spec["kind"]), gold, f"{args.decodes} ({spec['kind']} examples)")
    tokenizer = lid_model = None
    if task_kind(spec["kind"]).score is None:  # text: SP-ROUGE counts the model's own pieces
        from workflow_scripts.modeling import load_tokenizer

        tokenizer = load_tokenizer(args.model, revision=args.model_revision)
        if "lid_model" in spec:
            lid_model = metrics.load_lid_model(spec["lid_model"])
    write_tsv(args.out, pd.DataFrame(score_file(decodes, spec, tokenizer, lid_model)))
    write_json(args.out.with_suffix(".meta.json"), {"spec": spec})


if __name__ == "__main__":
    cli.run(main)
