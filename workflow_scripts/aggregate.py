"""Stage 8, aggregate: the paper's tables from every run's measurements, averaged over seeds.

scores       score by source combination x target at the en-dev checkpoint (Tables 3, 5, 6)
language_id  LID of target and sources, accidental translation, two- vs one-source reduction (Table 9)
selection    en-dev / cos-sim / tgt-dev per target with the mean gap to tgt-dev (Tables 7, 8)
spearman     Spearman's rho (and p) between XLRS and the zero-shot score (Table 4)
label_overlap  d per task and language pair from parallel labelled data, and per task (section 5.1)
numeric_answers  QA answers that are numbers, the overlap of a non-parallel dataset (section 5.4)
Table 4, the Δ of Tables 7-8 and Figures 5-6 are anchored on report.source and report.targets (English and
DE, ES, FR, ZH in the paper).
Each table is written as CSV (for machines) and Markdown (for people).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from workflow_scripts import cli
from workflow_scripts.files import DataError, atomic_path, read_json, read_jsonl, read_tsv, write_text

RULES = ("en-dev", "cos-sim", "tgt-dev")
PICKS = {"en-dev": "best source dev score", "tgt-dev": "best target dev score"}


def load_measurements(manifest: dict) -> dict[str, pd.DataFrame]:
    """All runs' XLRS, dev and test scores, selections and losses, each row tagged with its run."""
    frames = {"xlrs": [], "dev": [], "test": [], "select": [], "loss": []}
    for run in manifest["runs"]:
        tag = {"run": run["id"], "task": run["task"], "combination": "+".join(run["sources"]),
               "n_sources": len(run["sources"]), "first_source": run["sources"][0], "seed": run["seed"]}
        frames["loss"].append(read_tsv(f"{run['run_dir']}/train_log.tsv", numbers=("step", "loss")).assign(**tag))
        frames["xlrs"] += [read_tsv(path, ("source", "target", "layer", "last_layer"), numbers=("step", "xlrs"))
                           .assign(**tag) for path in run["xlrs"].values()]
        for lang, files in run["languages"].items():
            is_target = lang in run["targets"]
            zero_shot = lang not in run["sources"]
            for split in ("dev", "test"):
                frames[split].append(read_tsv(files[split], numbers=("step", run["metric"])).assign(
                    **tag, target=lang, metric=run["metric"], is_target=is_target, zero_shot=zero_shot))
            chosen = read_json(files["select"], required=("selection",))["selection"]
            frames["select"].append(pd.DataFrame([{**tag, "target": lang, "rule": rule, "step": step,
                                                   "zero_shot": zero_shot, "cos_sim": run["cos_sim"]}
                                                  for rule, step in chosen.items()]))
    return {name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame() for name, parts in frames.items()}


def metric_values(scores: pd.DataFrame) -> pd.Series:
    """Each row's own metric (tasks differ: rougeL, accuracy, f1)."""
    if scores.empty:  # apply on no rows returns an empty DataFrame, which assign() refuses
        return pd.Series(dtype=float, index=scores.index)
    return scores.apply(lambda row: row[row["metric"]], axis=1)


def at_selected(scores: pd.DataFrame, selections: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Test scores of the checkpoint that `rule` picked, per run and target."""
    chosen = selections[selections["rule"] == rule].dropna(subset=["step"])
    chosen = chosen.assign(step=chosen["step"].astype(int))[["run", "target", "step"]]
    found = scores.merge(chosen, on=["run", "target", "step"])
    if len(found) < len(chosen):  # a table would lose its row without a word
        lost = chosen.merge(found[["run", "target", "step"]], how="left", indicator=True).query("_merge == 'left_only'")
        run, target, step = lost.iloc[0][["run", "target", "step"]]
        raise DataError(f"run {run}: no test score of {target!r} at step {step}, the checkpoint {rule} selected: "
                        "its test decodes and scores do not match its selection; delete them to have them made again")
    return found


def seed_mean(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, standard deviation (NaN for one seed: none was measured) and number of seeds per group."""
    grouped = frame.groupby(keys)[value]
    return grouped.agg(mean="mean", std="std", seeds="count").reset_index()


def score_table(data: dict) -> pd.DataFrame:
    tested = at_selected(data["test"], data["select"], "en-dev")
    tested = tested[tested["is_target"]].assign(score=lambda f: metric_values(f))
    table = seed_mean(tested, ["task", "metric", "combination", "target", "zero_shot"], "score")
    return table.sort_values(["task", "combination", "target"]).reset_index(drop=True)


def language_id_table(data: dict) -> pd.DataFrame:
    tested = at_selected(data["test"], data["select"], "en-dev")
    if "accidental_translation" not in tested:
        return pd.DataFrame()
    # the rows language ID scored (text tasks' test sets): an unnamed source's accidental share is NaN, not absent
    scored = tested.filter(regex=r"^(lid_|accidental_translation$)").notna().any(axis=1)
    tested = tested[tested["zero_shot"] & scored]
    lid_columns = [c for c in tested.columns if c.startswith("lid_")]
    rows = []
    for (task, combination, target), group in tested.groupby(["task", "combination", "target"]):
        row = {"task": task, "combination": combination, "target": target, "seeds": len(group),
               "first_source": group["first_source"].iloc[0], "n_sources": group["n_sources"].iloc[0],
               "lid_target": group[f"lid_{target}"].mean(),
               "accidental_translation": group["accidental_translation"].mean()}
        row.update({f"lid_source_{c[4:]}": group[c].mean() for c in lid_columns
                    if c[4:] in combination.split("+") and c[4:] != target})
        rows.append(row)
    if not rows:  # no zero-shot target was decoded
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    one_source = table[table["n_sources"] == 1].set_index(["task", "combination", "target"])["accidental_translation"]

    def reduction(row):
        base = one_source.get((row["task"], row["first_source"], row["target"]))
        if row["n_sources"] == 1 or base is None or base == 0:
            return None
        return 100.0 * (base - row["accidental_translation"]) / base

    table["accidental_reduction_vs_first_source"] = table.apply(reduction, axis=1)
    return table.drop(columns=["first_source", "n_sources"])


def selection_table(data: dict) -> pd.DataFrame:
    """Test score per rule and zero-shot target; delta = rule minus tgt-dev, averaged over targets."""
    parts = []
    for rule in RULES:
        tested = at_selected(data["test"], data["select"], rule)
        tested = tested[tested["zero_shot"] & tested["is_target"]]
        parts.append(tested.assign(rule=rule, score=metric_values(tested)))
    scores = pd.concat(parts, ignore_index=True)
    if scores.empty:
        return pd.DataFrame()
    per_target = scores.groupby(["task", "metric", "combination", "rule", "target"])["score"].mean().reset_index()
    oracle = per_target[per_target["rule"] == "tgt-dev"].rename(columns={"score": "oracle"})
    per_target = per_target.merge(oracle[["task", "combination", "target", "oracle"]],
                                  on=["task", "combination", "target"], how="left")
    per_target["delta"] = per_target["score"] - per_target["oracle"]
    cos_sim_end = data["select"].groupby("task")["cos_sim"].first()
    per_target["picks"] = [PICKS.get(rule) or f"{cos_sim_end[task]} XLRS"
                           for task, rule in zip(per_target["task"], per_target["rule"])]
    return in_rule_order(per_target.drop(columns="oracle"), ["task", "combination", "rule", "target"])


def in_rule_order(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sorted by `by`, the rules in the paper's order (Tables 7, 8: en-dev, cos-sim, tgt-dev), not the alphabet's."""
    return frame.sort_values(by, key=lambda column: column.map(RULES.index) if column.name == "rule" else column,
                             ignore_index=True)


def selection_summary(selection: pd.DataFrame, targets: list[str]) -> pd.DataFrame:
    """The paper's Δ: the mean over `targets` of (rule - tgt-dev), per task, combination and rule (Tables 7, 8
    average over ES, DE, FR, ZH); over all its zero-shot targets where a combination has none of them."""
    rows = []
    for (task, combination, rule), group in selection.groupby(["task", "combination", "rule"]):
        chosen = group[group["target"].isin(targets)]
        chosen = group if chosen.empty else chosen
        rows.append({"task": task, "combination": combination, "rule": rule, "picks": group["picks"].iloc[0],
                     "delta": chosen["delta"].mean(), "targets": " ".join(sorted(chosen["target"]))})
    return in_rule_order(pd.DataFrame(rows), ["task", "combination", "rule"])


def spearman_table(data: dict, source: str, targets: list[str]) -> pd.DataFrame:
    """rho between last-layer XLRS(source, target) and the target's zero-shot dev score, per task, over the
    checkpoints of the runs fine-tuned on `source` alone (seeds pooled). Table 4's caption correlates "the average
    cosine similarity ... in source and 4 target languages" with "the average zero-shot ... performance": a point
    per checkpoint, XLRS and score averaged over the targets (table_4 true). A point per (checkpoint, target)
    follows as an extra: it also ranks languages against each other, which can reverse the sign."""
    from scipy.stats import spearmanr

    xlrs = data["xlrs"]
    if xlrs.empty:  # no run measured XLRS (its only language is its source)
        return pd.DataFrame()
    xlrs = xlrs[xlrs["last_layer"] & (xlrs["step"] > 0) & (xlrs["n_sources"] == 1) & (xlrs["source"] == source)]
    dev = data["dev"][data["dev"]["zero_shot"]].assign(score=lambda f: metric_values(f))
    points = xlrs.merge(dev, on=["run", "task", "step", "target"])
    points = points[points["target"].isin(targets)]
    rows = []
    for task, group in points.groupby("task"):
        measured = group["target"].nunique()
        complete = group.groupby(["run", "step"]).filter(lambda checkpoint: checkpoint["target"].nunique() == measured)
        readings = {"checkpoint, means over targets": complete.groupby(["run", "step"])[["xlrs", "score"]].mean(),
                    "(checkpoint, target)": group}
        for points_are, frame in readings.items():
            rho, p = spearmanr(frame["xlrs"], frame["score"]) if len(frame) > 2 else (float("nan"), float("nan"))
            rows.append({"task": task, "metric": group["metric"].iloc[0], "source": source, "points_are": points_are,
                         "table_4": points_are == "checkpoint, means over targets",
                         "rho": rho, "p_value": p, "points": len(frame),
                         "targets": " ".join(sorted(group["target"].unique()))})
    return pd.DataFrame(rows)


def label_overlap(manifest: dict) -> pd.DataFrame:
    """d(s, t): the share of parallel test examples (same id) whose cast targets are identical. Datasets that are
    not parallel or not aligned (UDPOS, TyDiQA, WikiLingua) give their examples ids of their own language, so they
    give no rows."""
    rows = []
    sources = sorted({(run["task"], run["sources"][0]) for run in manifest["runs"] if len(run["sources"]) == 1})
    for task, source in sources:
        languages = manifest["cast_test"][task]
        labels = {r["id"]: r["target"] for r in read_jsonl(languages[source])}
        for target, test_file in languages.items():
            if target == source:
                continue
            other = {r["id"]: r["target"] for r in read_jsonl(test_file)}
            shared = sorted(set(labels) & set(other))
            if shared:
                same = sum(labels[i] == other[i] for i in shared)
                rows.append({"task": task, "source": source, "target": target, "pairs": len(shared),
                             "d": 100.0 * same / len(shared)})
    return pd.DataFrame(rows)


def label_overlap_per_task(overlap: pd.DataFrame) -> pd.DataFrame:
    """d per task: the mean of d(source, t) over its target languages (§5.1)."""
    if overlap.empty:
        return pd.DataFrame()
    return (overlap.groupby(["task", "source"])
            .agg(d=("d", "mean"), targets=("target", lambda t: " ".join(sorted(t)))).reset_index())


def numeric_answers(manifest: dict) -> pd.DataFrame:
    """§5.4: TyDiQA is not parallel, so the paper counts answers that overlap across languages anyway, numbers:
    per QA task and language, the share of test answers that are a number alone (digits and separators) and
    the share that hold a digit (dates and times among them; the paper's 'mainly composed of numbers' has no
    exact definition)."""
    import re

    from workflow_scripts.metrics import strip_sentinels

    # a declared task's kind, fine-tuned or not (manifest "kinds"); an older manifest knows only its runs' tasks
    kinds = {**{run["task"]: run["kind"] for run in manifest["runs"]}, **manifest.get("kinds", {})}
    rows = []
    for task, languages in manifest["cast_test"].items():
        if kinds.get(task) != "qa":
            continue
        for lang, test_file in languages.items():
            answers = [strip_sentinels(r["target"]) for r in read_jsonl(test_file)]
            digits = [any(c.isdigit() for c in answer) for answer in answers]
            alone = [d and re.fullmatch(r"[\d\s.,:/-]+", answer) is not None for d, answer in zip(digits, answers)]
            rows.append({"task": task, "language": lang, "answers": len(answers),
                         "number_alone": 100.0 * sum(alone) / len(answers),
                         "with_digits": 100.0 * sum(digits) / len(answers)})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, why_empty: str = "") -> str:
    if frame.empty:
        return f"_no rows{': ' + why_empty if why_empty else ''}_\n"
    blanks = frame.astype(object).where(frame.notna(), None)  # tabulate leaves None cells empty, not NaN
    # two decimals, but a p-value keeps two significant digits: 0.0012 is not "0.00"
    floatfmt = [".2g" if column == "p_value" else ".2f" for column in frame.columns]
    return blanks.to_markdown(index=False, floatfmt=floatfmt, missingval="") + "\n"


def score_markdown(scores: pd.DataFrame, runs: list[dict]) -> str:
    """Combination x target per task, in the config's order of combinations and targets as the paper's tables
    are: mean ± std over seeds (the mean alone from one seed), † where the target is a source (not zero-shot), and
    the mean over the targets
    every row of the task has (Tables 5 and 6's Avg.; WikiLingua's English row also has DE, for Tables 4 and 7)."""
    rows = list(dict.fromkeys((run["task"], "+".join(run["sources"])) for run in runs))
    columns = list(dict.fromkeys((run["task"], target) for run in runs for target in run["targets"]))
    out = []
    for (task, metric), group in scores.groupby(["task", "metric"]):
        cells = group.assign(cell=group.apply(
            lambda r: f"{r['mean']:.1f}" + ("" if pd.isna(r["std"]) else f" ± {r['std']:.1f}")
            + ("" if r["zero_shot"] else " †"), axis=1))
        wide = cells.pivot(index="combination", columns="target", values="cell")
        wide = wide.reindex(index=[c for t, c in rows if t == task and c in wide.index],
                            columns=[c for t, c in columns if t == task and c in wide.columns]).fillna("")
        shared = set.intersection(*group.groupby("combination")["target"].agg(set))
        averages = group[group["target"].isin(shared)].groupby("combination")["mean"].mean()
        wide["Avg."] = averages.reindex(wide.index).map("{:.1f}".format, na_action="ignore").fillna("")
        table = wide.rename_axis(columns=None).reset_index().to_markdown(index=False, disable_numparse=True)
        out.append(f"### {task} ({metric}, en-dev checkpoint, {int(group['seeds'].max())} seed(s))\n\n{table}\n")
    return "\n".join(out) + ("\nA cell is the mean ± the standard deviation over its seeds, the mean alone where one "
                             "seed has it. † supervised direction (the target is a source language), not zero-shot. "
                             "Avg.: the mean over the targets every row of its table has, supervised ones included.\n")


def write_tables(manifest: dict, out_dir: Path) -> None:
    data, report = load_measurements(manifest), manifest["report"]
    selection, overlap = selection_table(data), label_overlap(manifest)
    tables = {
        "scores": score_table(data),
        "language_id": language_id_table(data),
        "selection": selection,
        "selection_delta": selection_summary(selection, report["targets"]) if not selection.empty else pd.DataFrame(),
        "spearman": spearman_table(data, report["source"], report["targets"]),
        "label_overlap": overlap,
        "label_overlap_task": label_overlap_per_task(overlap),
        "numeric_answers": numeric_answers(manifest),
    }
    sections = ["# Results\n", "Averaged over seeds. Scores ×100. The demo's tiny model makes its numbers "
                "illustrative only.\n", "## Scores (Tables 3, 5, 6)\n",
                score_markdown(tables["scores"], manifest["runs"])]
    titles = {"language_id": "Language ID and accidental translation (Table 9)",
              "selection": "Checkpoint selection per target (Tables 7, 8)",
              "selection_delta": "Checkpoint selection: mean Δ to tgt-dev",
              "spearman": "Spearman's ρ between XLRS and zero-shot score (Table 4: the rows with table_4 true)",
              "label_overlap": "Label overlap d (§5.1)",
              "label_overlap_task": "Label overlap d per task: the mean over targets (§5.1)",
              "numeric_answers": "Answers that are numbers, the overlap of a non-parallel QA set (§5.4)"}
    why_empty = {
        "language_id": "no zero-shot target of a generation task was tested",
        "spearman": f"no run fine-tuned on report.source ({report['source']}) alone has last-layer XLRS and zero-shot "
                    f"dev scores in report.targets ({', '.join(report['targets'])})",
        "label_overlap": "no test example of a run's only source shares its id with one of another language (a "
                         "dataset that is not parallel gives its ids a language)",
        "numeric_answers": "no task of kind qa is declared"}
    for name, frame in tables.items():
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False, float_format="%.4f")
        if name in titles:
            sections += [f"## {titles[name]}\n", markdown(frame, why_empty.get(name, ""))]
    write_text(out_dir / "README.md", "\n".join(sections))


def main() -> None:
    args = cli.summary_parser(__doc__).parse_args()
    write_tables(read_json(args.manifest), args.out_dir)


if __name__ == "__main__":
    cli.run(main)
