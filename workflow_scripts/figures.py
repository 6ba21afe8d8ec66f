"""Stage 8, figures: what the paper plots, from every run's measurements (PNG, matplotlib).

xlrs_<task>-<sources>.png  XLRS over training steps, a line per source and target, mean over seeds (Figures 1-3)
xlrs_best_checkpoint.png  XLRS at each task's en-dev checkpoint vs the model before fine-tuning (Figure 5)
xlrs_sources_<task>.png  XLRS over training, one source vs two sources (Figure 6)
loss_<task>.png          training loss per source combination, mean over seeds
Figures 5 and 6 show XLRS between report.source and report.targets, in the runs that report.source is in.
A language keeps its colour in every figure; a figure without data is skipped with a warning in the job's log.
"""
from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from workflow_scripts import cli  # noqa: E402
from workflow_scripts.aggregate import load_measurements  # noqa: E402
from workflow_scripts.files import atomic_path, read_json  # noqa: E402


log = logging.getLogger("figures")
SOURCE_STYLES = ("-", "--", ":")  # a two-source run's lines from its first, second... source


def last_layer(xlrs):
    return xlrs[xlrs["last_layer"]]


def language_colours(languages) -> dict[str, tuple]:
    """One colour per language, the same in every figure of a summary."""
    palette = plt.get_cmap("tab20" if len(languages) > 10 else "tab10").colors
    return {lang: palette[i % len(palette)] for i, lang in enumerate(sorted(languages))}


def plot_mean_and_range(axis, points, x: str, y: str, **style) -> None:
    """The mean over seeds of y at each x, and, with several seeds, their range as a band of the same colour."""
    line = points.groupby(x)[y].agg(["mean", "min", "max"])
    drawn = axis.plot(line.index, line["mean"], **style)[0]
    if points["seed"].nunique() > 1:
        axis.fill_between(line.index, line["min"], line["max"], alpha=0.15, color=drawn.get_color())


def save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(figure)


def xlrs_over_training(xlrs, colours: dict, out_dir: Path) -> None:
    """Per task and source combination, a line per (source, target): the mean over seeds, and their range; the
    target's colour, the source's line style. Between a run's two sources XLRS is symmetric: drawn once."""
    for (task, combination), group in last_layer(xlrs).groupby(["task", "combination"]):
        figure, axis = plt.subplots(figsize=(7.5, 4))
        sources, drawn = combination.split("+"), set()
        for (source, target), points in group.groupby(["source", "target"]):
            if (target, source) in drawn:
                continue
            drawn.add((source, target))
            plot_mean_and_range(axis, points, "step", "xlrs", marker="o", label=f"{source}–{target}",
                                color=colours[target],
                                linestyle=SOURCE_STYLES[sources.index(source) % len(SOURCE_STYLES)])
        seeds = group["seed"].nunique()
        axis.set(xlabel="training step (0 = before fine-tuning)", ylabel="XLRS (mean cosine, last encoder layer)",
                 title=f"XLRS over training: {task}, fine-tuned on {combination}\n"
                       f"mean of {seeds} seed(s){', band: their range' if seeds > 1 else ''}")
        # beside the plot, not on it: a two-source run's lines fill the whole axes and "best" still covers some
        axis.legend(title="source–target", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        save(figure, out_dir / f"xlrs_{task}-{combination}.png")


def xlrs_best_checkpoint(xlrs, selections, report: dict, out_dir: Path) -> None:
    last = last_layer(xlrs)
    alone = last[(last["n_sources"] == 1) & (last["source"] == report["source"])
                 & last["target"].isin(report["targets"])]
    # en-dev picks one checkpoint per run, whatever the target: also for targets that are only measured
    chosen = selections[selections["rule"] == "en-dev"].dropna(subset=["step"]).groupby("run")["step"].first()
    best = alone.merge(chosen.astype(int).reset_index(), on=["run", "step"])
    before = alone[alone["step"] == 0].assign(task="before fine-tuning")
    if best.empty:
        log.warning("xlrs_best_checkpoint.png (Figure 5) not drawn: no run on %s alone has XLRS with %s at its "
                    "en-dev checkpoint", report["source"], ", ".join(report["targets"]))
        return
    bars = (best.groupby(["task", "target"])["xlrs"].mean().unstack("task")
            .join(before.groupby("target")["xlrs"].mean().rename("before fine-tuning"), how="outer"))
    figure, axis = plt.subplots(figsize=(7, 4))
    bars.plot.bar(ax=axis, rot=0)
    axis.set(xlabel=f"target language (XLRS with {report['source']})",
             ylabel="XLRS, last encoder layer\n(en-dev checkpoint; before fine-tuning: step 0)",
             title=f"XLRS of the best checkpoint per task, fine-tuned on {report['source']}")
    axis.legend(fontsize=8)
    save(figure, out_dir / "xlrs_best_checkpoint.png")


def xlrs_one_vs_two_sources(xlrs, report: dict, out_dir: Path) -> None:
    """XLRS(source, target) over training: the run on report.source alone against each two-source run that
    includes it (Figure 6: EN against EN+DE, English-French)."""
    source = report["source"]
    data = last_layer(xlrs)
    data = data[data["combination"].str.split("+").map(lambda sources: source in sources) & (data["source"] == source)]
    for task, group in data.groupby("task"):
        combinations = sorted(group["combination"].unique(), key=lambda c: (c.count("+"), c))
        if len(combinations) < 2 or combinations[0] != source:
            continue  # no one-vs-two-source comparison in this task: nothing to say
        trained = set("+".join(combinations).split("+"))
        targets = [t for t in report["targets"] if t not in trained and t in set(group["target"])]
        if not targets:
            log.warning("xlrs_sources_%s.png (Figure 6) not drawn: none of %s has XLRS without being trained on",
                        task, ", ".join(report["targets"]))
            continue
        figure, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 3.5), squeeze=False, sharey=True)
        for axis, target in zip(axes[0], targets):
            for combination in combinations:
                points = group[(group["combination"] == combination) & (group["target"] == target)]
                plot_mean_and_range(axis, points, "step", "xlrs", marker="o", label=combination)
            axis.set(title=f"{task}: XLRS {source}–{target}", xlabel="training step")
            axis.legend(title="trained on", fontsize=8)
        axes[0][0].set_ylabel(f"XLRS, last encoder layer\n(mean of {group['seed'].nunique()} seed(s))")
        save(figure, out_dir / f"xlrs_sources_{task}.png")


def loss_curves(loss, out_dir: Path) -> None:
    """Per task, a line per source combination: the loss smoothed over 5 steps, mean over seeds, and their range."""
    for task, group in loss.groupby("task"):
        figure, axis = plt.subplots(figsize=(6, 4))
        smoothed = group.sort_values("step").assign(
            loss=lambda f: f.groupby("run")["loss"].transform(lambda values: values.rolling(5, min_periods=1).mean()))
        for combination, points in smoothed.groupby("combination"):
            plot_mean_and_range(axis, points, "step", "loss", label=combination)
        seeds = group["seed"].nunique()
        axis.set(xlabel="optimizer step", ylabel="training loss (mean of 5 steps)",
                 title=f"Training loss: {task}, mean of {seeds} seed(s){', band: their range' if seeds > 1 else ''}")
        axis.legend(title="trained on", fontsize=8)
        save(figure, out_dir / f"loss_{task}.png")


def write_figures(manifest: dict, out_dir: Path) -> None:
    data = load_measurements(manifest)
    out_dir.mkdir(parents=True, exist_ok=True)
    if data["xlrs"].empty:
        log.warning("no XLRS figures: no run measured XLRS (each run's only language is its source)")
    else:
        colours = language_colours(set(data["xlrs"]["target"]) | set(data["xlrs"]["source"]))
        xlrs_over_training(data["xlrs"], colours, out_dir)
        xlrs_best_checkpoint(data["xlrs"], data["select"], manifest["report"], out_dir)
        xlrs_one_vs_two_sources(data["xlrs"], manifest["report"], out_dir)
    loss_curves(data["loss"], out_dir)


def main() -> None:
    args = cli.summary_parser(__doc__).parse_args()
    write_figures(read_json(args.manifest), args.out_dir)


if __name__ == "__main__":
    cli.run(main)
