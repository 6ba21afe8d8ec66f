"""Aggregation on hand-made measurements with known answers: selection Δ, Spearman's ρ, LID reduction."""
import copy
import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from workflow_scripts import aggregate, figures
from workflow_scripts.files import DataError


def write(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)


def write_xlrs(path, points) -> str:
    """An XLRS table of (step, source, target, value) points, all of the last layer."""
    write(path, pd.DataFrame([{"step": s, "source": source, "target": target, "layer": 1, "last_layer": True,
                               "xlrs": value} for s, source, target, value in points]))
    return str(path)


def make_run(root, run_id, sources, targets, test, dev, selections, xlrs, lid=None):
    """test/dev: {lang: {step: rougeL}}; selections: {lang: {rule: step}}; xlrs: {lang: {step: value}}."""
    run_dir = root / run_id
    write(run_dir / "train_log.tsv", pd.DataFrame({"step": [1, 2], "epoch": [0, 0], "loss": [2.0, 1.0]}))
    languages, xlrs_files = {}, {}
    for lang in dict.fromkeys([*sources, *targets]):
        files = {}
        for split, table in (("dev", dev), ("test", test)):
            rows = [{"step": s, "lang": lang, "rougeL": v, **((lid or {}).get(lang, {}))}
                    for s, v in table[lang].items()]
            files[split] = str(run_dir / f"{split}-{lang}.tsv")
            write(run_dir / f"{split}-{lang}.tsv", pd.DataFrame(rows))
        if lang in xlrs:
            xlrs_files[lang] = write_xlrs(run_dir / f"xlrs-{lang}.tsv",
                                          [(s, sources[0], lang, v) for s, v in xlrs[lang].items()])
        files["select"] = str(run_dir / f"select-{lang}.json")
        (run_dir / f"select-{lang}.json").write_text(json.dumps({"selection": selections.get(lang, {})}))
        languages[lang] = files
    return {"id": run_id, "task": "tg", "kind": "generation", "sources": sources, "seed": 1, "metric": "rougeL",
            "cos_sim": "lowest", "targets": targets, "run_dir": str(run_dir), "languages": languages,
            "xlrs": xlrs_files}


@pytest.fixture
def manifest(tmp_path):
    steps = {"en": {10: 50.0, 20: 60.0, 30: 55.0}}
    test = {**steps, "de": {10: 10.0, 20: 20.0, 30: 30.0}, "fr": {10: 5.0, 20: 15.0, 30: 25.0}}
    dev = {**steps, "de": {10: 1.0, 20: 3.0, 30: 0.0}, "fr": {10: 2.0, 20: 4.0, 30: 0.0}}
    selections = {"en": {"en-dev": 20, "cos-sim": None, "tgt-dev": 20},
                  "de": {"en-dev": 10, "cos-sim": 20, "tgt-dev": 30},
                  "fr": {"en-dev": 10, "cos-sim": 30, "tgt-dev": 30}}
    # XLRS at 10, 20 ranks 1..4 over (de, fr); the dev scores rank 1, 3, 2, 4 -> rho = 1 - 6*2/(4*15) = 0.8
    xlrs = {"de": {0: 0.05, 10: 0.1, 20: 0.2}, "fr": {0: 0.05, 10: 0.3, 20: 0.9}}  # uneven: Pearson is not 0.8
    lid = {"de": {"lid_de": 10.0, "lid_en": 80.0, "accidental_translation": 80.0}}
    one = make_run(tmp_path, "tg-en-s1", ["en"], ["en", "de", "fr"], test, dev, selections, xlrs, lid)
    lid_two = {"de": {"lid_de": 70.0, "lid_en": 20.0, "lid_zh": 5.0, "accidental_translation": 20.0}}
    two = make_run(tmp_path, "tg-en+zh-s1", ["en", "zh"], ["de"], {**test, "zh": steps["en"]},
                   {**dev, "zh": steps["en"]}, {"de": {"en-dev": 10, "cos-sim": 10, "tgt-dev": 10}}, {}, lid_two)
    return {"runs": [one, two], "cast_test": {}, "report": {"source": "en", "targets": ["de", "fr"]}}


def test_selection_delta_is_the_mean_gap_to_the_oracle(manifest):
    manifest["runs"] = manifest["runs"][:1]
    data = aggregate.load_measurements(manifest)
    delta = aggregate.selection_summary(aggregate.selection_table(data), ["de", "fr"]).set_index("rule")["delta"]
    assert delta["en-dev"] == pytest.approx(-20.0)    # (10-30 + 5-25) / 2
    assert delta["cos-sim"] == pytest.approx(-5.0)    # (20-30 + 25-25) / 2
    assert delta["tgt-dev"] == 0.0


def test_the_selection_tables_say_what_each_rule_picks(manifest):
    manifest["runs"] = manifest["runs"][:1]
    manifest["runs"][0]["cos_sim"] = "highest"
    selection = aggregate.selection_table(aggregate.load_measurements(manifest))
    assert list(dict.fromkeys(selection["rule"])) == ["en-dev", "cos-sim", "tgt-dev"]  # Tables 7, 8's order
    summary = aggregate.selection_summary(selection, ["de", "fr"]).set_index("rule")["picks"]
    assert list(summary.index) == ["en-dev", "cos-sim", "tgt-dev"]
    assert summary.to_dict() == {"cos-sim": "highest XLRS", "en-dev": "best source dev score",
                                 "tgt-dev": "best target dev score"}
    assert set(selection[selection["rule"] == "cos-sim"]["picks"]) == {"highest XLRS"}


def test_selection_delta_averages_the_report_targets(manifest):
    manifest["runs"] = manifest["runs"][:1]
    selection = aggregate.selection_table(aggregate.load_measurements(manifest))
    delta = aggregate.selection_summary(selection, ["de", "es"]).set_index("rule")
    assert delta.loc["en-dev", "delta"] == pytest.approx(-20.0) and delta.loc["cos-sim", "delta"] == -10.0  # de alone
    assert delta.loc["en-dev", "targets"] == "de"
    everything = aggregate.selection_summary(selection, ["ja"]).set_index("rule")  # none of them: every target
    assert everything.loc["cos-sim", "delta"] == -5.0 and everything.loc["cos-sim", "targets"] == "de fr"


def test_a_score_table_without_its_metric_or_a_selected_step_is_named(manifest):
    de_test = Path(manifest["runs"][0]["languages"]["de"]["test"])
    write(de_test, pd.DataFrame([{"step": 10, "lang": "de", "accuracy": 1.0}]))
    with pytest.raises(DataError, match=r"test-de.tsv: no column 'rougeL' \(it has step, lang, accuracy\)"):
        aggregate.load_measurements(manifest)
    write(de_test, pd.DataFrame([{"step": 20, "lang": "de", "rougeL": 1.0}]))  # en-dev selected step 10
    with pytest.raises(DataError, match=r"run tg-en-s1: no test score of 'de' at step 10, the checkpoint en-dev"):
        aggregate.score_table(aggregate.load_measurements(manifest))


def test_spearman_on_known_ranks(manifest):
    data = aggregate.load_measurements(manifest)
    table = aggregate.spearman_table(data, "en", ["de", "fr"]).set_index("points_are")
    pooled = table.loc["(checkpoint, target)"]
    assert pooled["rho"] == pytest.approx(0.8) and pooled["source"] == "en"
    assert pooled["points"] == 4   # step 0 and the two-source run are not points
    assert table.loc["checkpoint, means over targets", "points"] == 2  # too few for a rho
    assert pd.isna(table.loc["checkpoint, means over targets", "rho"])


def test_spearman_of_target_means_per_checkpoint(tmp_path):
    """Means over de and fr at 10, 20, 30: XLRS .2, .3, .25 (ranks 1 3 2), dev 1.5, 3.5, 0 (ranks 2 3 1):
    rho = 1 - 6 * (1 + 0 + 1) / (3 * 8) = 0.5. A run on another source is left out, and a checkpoint
    without XLRS for one of the targets is no mean."""
    dev = {"en": {10: 0, 20: 0, 30: 0}, "de": {10: 1.0, 20: 3.0, 30: 0.0}, "fr": {10: 2.0, 20: 4.0, 30: 0.0}}
    xlrs = {"de": {10: 0.1, 20: 0.2, 30: 0.15}, "fr": {10: 0.3, 20: 0.4, 30: 0.35}}
    english = make_run(tmp_path, "tg-en-s1", ["en"], ["de", "fr"], dev, dev, {}, xlrs)
    german = make_run(tmp_path, "tg-de-s1", ["de"], ["fr"], {**dev, "de": dev["en"]}, {**dev, "de": dev["en"]}, {},
                      {"fr": {10: 0.9, 20: 0.1, 30: 0.5}})
    data = aggregate.load_measurements({"runs": [english, german], "cast_test": {}})
    table = aggregate.spearman_table(data, "en", ["de", "fr"]).set_index("points_are")
    assert table.loc["checkpoint, means over targets", "rho"] == pytest.approx(0.5)
    assert table.loc["(checkpoint, target)", "points"] == 6
    assert table["table_4"].to_dict() == {"checkpoint, means over targets": True, "(checkpoint, target)": False}
    xlrs["fr"].pop(30)
    partial = make_run(tmp_path / "partial", "tg-en-s1", ["en"], ["de", "fr"], dev, dev, {}, xlrs)
    table = aggregate.spearman_table(aggregate.load_measurements({"runs": [partial], "cast_test": {}}), "en",
                                     ["de", "fr"])
    assert table.set_index("points_are").loc["checkpoint, means over targets", "points"] == 2
    german_only = aggregate.spearman_table(data, "de", ["de", "fr"])
    assert set(german_only["points"]) == {3} and set(german_only["targets"]) == {"fr"}


def test_scores_at_en_dev_and_zero_shot_marks(manifest):
    table = aggregate.score_table(aggregate.load_measurements(manifest)).set_index(["combination", "target"])
    assert table.loc[("en", "de"), "mean"] == 10.0 and table.loc[("en", "de"), "zero_shot"]
    assert table.loc[("en", "en"), "mean"] == 60.0 and not table.loc[("en", "en"), "zero_shot"]


def test_the_score_markdown_keeps_the_configs_order_and_averages_each_row(manifest):
    """Rows and columns as the config lists them (the paper's order), not sorted; Avg. over the targets every row
    has, so that rows compare (WikiLingua's English row has DE too)."""
    manifest["runs"][0]["targets"] = ["fr", "en", "de"]
    table = aggregate.score_markdown(aggregate.score_table(aggregate.load_measurements(manifest)), manifest["runs"])
    lines = [line.replace(" ", "") for line in table.splitlines() if line.startswith("|")]
    assert lines[0] == "|combination|fr|en|de|Avg.|"
    assert lines[2] == "|en|5.0|60.0†|10.0|10.0|"  # DE alone is in both rows; one seed: no ± (none measured)
    assert lines[3] == "|en+zh|||10.0|10.0|"
    manifest["runs"] = manifest["runs"][:1]
    table = aggregate.score_markdown(aggregate.score_table(aggregate.load_measurements(manifest)), manifest["runs"])
    assert "|en|5.0|60.0†|10.0|25.0|" in table.replace(" ", "")  # (5 + 60 + 10) / 3


def test_a_cell_of_several_seeds_shows_their_spread(manifest, tmp_path):
    second = copy.deepcopy(manifest["runs"][0])
    second.update(id="tg-en-s2", seed=2)
    de_test = tmp_path / "s2-test-de.tsv"
    write(de_test, pd.DataFrame([{"step": s, "lang": "de", "rougeL": v} for s, v in ((10, 14.0), (20, 0), (30, 0))]))
    second["languages"]["de"] = {**second["languages"]["de"], "test": str(de_test)}
    manifest["runs"] = [manifest["runs"][0], second]
    table = aggregate.score_markdown(aggregate.score_table(aggregate.load_measurements(manifest)), manifest["runs"])
    # de: 10 and 14 at en-dev's step 10; en and fr: the same in both seeds, a spread of 0 that was measured
    assert "|en|60.0±0.0†|12.0±2.8|5.0±0.0|" in table.replace(" ", "")


def test_two_source_accidental_translation_reduction(manifest):
    table = aggregate.language_id_table(aggregate.load_measurements(manifest)).set_index("combination")
    assert table.loc["en+zh", "accidental_reduction_vs_first_source"] == pytest.approx(75.0)  # 80 -> 20
    assert table.loc["en+zh", "lid_source_zh"] == 5.0 and table.loc["en", "lid_target"] == 10.0


def test_figures_are_written(manifest, tmp_path):
    figures.write_figures(manifest, tmp_path / "figures")
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == ["loss_tg.png", "xlrs_best_checkpoint.png", "xlrs_tg-en.png"]


def test_xlrs_over_training_is_the_mean_over_seeds(manifest, tmp_path, monkeypatch):
    second = copy.deepcopy(manifest["runs"][0])
    second.update(id="tg-en-s2", seed=2)
    second["xlrs"] = {"de": write_xlrs(tmp_path / "s2-xlrs-de.tsv",
                                       [(s, "en", "de", v) for s, v in {0: 0.15, 10: 0.3, 20: 0.4}.items()])}
    manifest["runs"] = [manifest["runs"][0], second]
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path: drawn.update({path.name: figure}))
    figures.write_figures(manifest, tmp_path / "figures")
    axis = drawn["xlrs_tg-en.png"].axes[0]
    lines = {line.get_label(): [round(y, 3) for y in line.get_ydata()] for line in axis.get_lines()}
    assert lines == {"en–de": [0.1, 0.2, 0.3], "en–fr": [0.05, 0.3, 0.9]}  # de: (0.05+0.15)/2, (0.1+0.3)/2, ...
    assert "mean of 2 seed(s)" in axis.get_title()


def test_a_language_keeps_its_colour_and_two_sources_are_drawn_once(tmp_path, monkeypatch):
    """In an EN+ZH run, XLRS(en, zh) and XLRS(zh, en) are one value: one line. DE has one colour in every run's
    figure, the source a line style; a seed band takes its line's colour."""
    steps = {lang: {0: 0.0, 10: 1.0} for lang in ("en", "zh", "de")}
    chosen = {lang: {"en-dev": 10, "cos-sim": 10, "tgt-dev": 10} for lang in ("en", "zh", "de")}
    english = make_run(tmp_path, "tg-en-s1", ["en"], ["de", "zh"], steps, steps, chosen,
                       {"de": {0: 0.5, 10: 0.6}, "zh": {0: 0.4, 10: 0.5}})
    both = make_run(tmp_path, "tg-en+zh-s1", ["en", "zh"], ["de"], steps, steps, chosen, {})
    both["xlrs"] = {"all": write_xlrs(tmp_path / "tg-en+zh-s1" / "xlrs.tsv", [
        (s, source, target, 0.5) for source, target in (("en", "zh"), ("zh", "en"), ("en", "de"), ("zh", "de"))
        for s in (0, 10)])}
    again = copy.deepcopy(english)
    again.update(id="tg-en-s2", seed=2)
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path: drawn.update({path.name: figure}))
    figures.write_figures({"runs": [english, again, both], "cast_test": {},
                           "report": {"source": "en", "targets": ["de"]}}, tmp_path / "figures")
    lines = {name: {line.get_label(): line for line in drawn[name].axes[0].get_lines()}
             for name in ("xlrs_tg-en.png", "xlrs_tg-en+zh.png")}
    assert sorted(lines["xlrs_tg-en+zh.png"]) == ["en–de", "en–zh", "zh–de"]
    assert lines["xlrs_tg-en+zh.png"]["en–de"].get_color() == lines["xlrs_tg-en.png"]["en–de"].get_color()
    assert lines["xlrs_tg-en+zh.png"]["zh–de"].get_color() == lines["xlrs_tg-en.png"]["en–de"].get_color()
    two_sources = lines["xlrs_tg-en+zh.png"]
    assert two_sources["zh–de"].get_linestyle() != two_sources["en–de"].get_linestyle()
    band = drawn["xlrs_tg-en.png"].axes[0].collections[0]  # two seeds of the EN run
    assert tuple(band.get_facecolor()[0][:3]) == tuple(matplotlib.colors.to_rgb(
        lines["xlrs_tg-en.png"][next(iter(lines["xlrs_tg-en.png"]))].get_color()))
    loss = {line.get_label() for line in drawn["loss_tg.png"].axes[0].get_lines()}
    assert loss == {"en", "en+zh"}  # a line per source combination, seeds averaged


def test_the_xlrs_legend_covers_no_line(tmp_path, monkeypatch):
    """A two-source run's lines fill the axes, where a legend inside ('best') covered some of them: it goes beside
    the plot, and the saved figure still holds all of it."""
    steps = {lang: {0: 0.0, 10: 1.0} for lang in ("en", "zh", "de", "fr", "es")}
    chosen = {lang: {"en-dev": 10, "cos-sim": 10, "tgt-dev": 10} for lang in steps}
    run = make_run(tmp_path, "tg-en+zh-s1", ["en", "zh"], ["de", "fr", "es"], steps, steps, chosen, {})
    run["xlrs"] = {"all": write_xlrs(tmp_path / "tg-en+zh-s1" / "xlrs.tsv", [
        (s, source, target, value + 0.1 * s) for source in ("en", "zh")
        for target, value in (("de", 0.1), ("fr", 0.4), ("es", 0.7), ("zh" if source == "en" else "en", 0.5))
        for s in (0, 5, 10)])}
    drawn = {}

    def keep(figure, path):
        figure.tight_layout()
        figure.canvas.draw()
        drawn[path.name] = figure

    monkeypatch.setattr(figures, "save", keep)
    figures.xlrs_over_training(aggregate.load_measurements({"runs": [run]})["xlrs"], figures.language_colours(steps),
                               tmp_path)
    figure = drawn["xlrs_tg-en+zh.png"]
    axis, legend = figure.axes[0], figure.axes[0].get_legend()
    box, window = legend.get_window_extent(), axis.get_window_extent()
    assert box.x0 >= window.x1  # beside the axes, not on them
    assert box.x1 <= figure.bbox.x1 and box.y0 >= figure.bbox.y0  # and not cut off


def test_figures_5_and_6_show_xlrs_with_the_report_source(tmp_path, monkeypatch):
    """A DE+EN run's first source is DE: Figure 6 must still draw its XLRS(en, fr), against the EN run's; a
    run on DE alone is in neither figure."""
    steps = {lang: {0: 0.0, 10: 1.0} for lang in ("en", "de", "fr")}
    selections = {lang: {"en-dev": 10, "cos-sim": 10, "tgt-dev": 10} for lang in ("en", "de", "fr")}
    english = make_run(tmp_path, "tg-en-s1", ["en"], ["de", "fr"], steps, steps, selections,
                       {"fr": {0: 0.5, 10: 0.6}, "de": {0: 0.5, 10: 0.7}})
    both = make_run(tmp_path, "tg-de+en-s1", ["de", "en"], ["fr"], steps, steps, selections, {})
    both["xlrs"] = {"fr": write_xlrs(tmp_path / "tg-de+en-s1" / "xlrs-fr.tsv", [
        (s, source, "fr", value) for source, values in (("de", {0: 0.9, 10: 0.9}), ("en", {0: 0.5, 10: 0.3}))
        for s, value in values.items()])}
    german = make_run(tmp_path, "tg-de-s1", ["de"], ["fr"], steps, steps, selections, {"fr": {0: 0.8, 10: 0.1}})
    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path: drawn.update({path.name: figure}))
    figures.write_figures({"runs": [english, both, german], "cast_test": {},
                           "report": {"source": "en", "targets": ["de", "fr"]}}, tmp_path / "figures")
    lines = {line.get_label(): list(line.get_ydata()) for line in drawn["xlrs_sources_tg.png"].axes[0].get_lines()}
    assert lines == {"en": [0.5, 0.6], "de+en": [0.5, 0.3]}
    bars = drawn["xlrs_best_checkpoint.png"].axes[0]
    assert sorted(round(patch.get_height(), 2) for patch in bars.patches) == [0.5, 0.5, 0.6, 0.7]  # EN run only


def test_label_overlap_counts_parallel_ids_with_the_same_target(tmp_path):
    """§5.1: d(en, t) = share of ids both languages have whose cast targets are equal; d of the task = the mean
    over targets. An id one language lacks is no pair."""
    from workflow_scripts.files import write_jsonl

    labels = {"en": {"1": "yes", "2": "no", "3": "yes", "4": "no"},
              "de": {"1": "yes", "2": "no", "3": "yes", "4": "yes"},   # 3 of 4
              "fr": {"1": "no", "2": "no", "3": "no", "9": "no"}}      # 1 of 3: "9" has no English row
    for lang, rows in labels.items():
        write_jsonl(tmp_path / f"{lang}.jsonl", [{"id": i, "input": "x", "target": t} for i, t in rows.items()])
    manifest = {"runs": [{"task": "paws", "sources": ["en"]}, {"task": "paws", "sources": ["en", "de"]}],
                "cast_test": {"paws": {lang: str(tmp_path / f"{lang}.jsonl") for lang in labels}}}
    overlap = aggregate.label_overlap(manifest)
    assert overlap.to_dict("records") == [
        {"task": "paws", "source": "en", "target": "de", "pairs": 4, "d": 75.0},
        {"task": "paws", "source": "en", "target": "fr", "pairs": 3, "d": pytest.approx(100 / 3)}]
    per_task = aggregate.label_overlap_per_task(overlap).to_dict("records")
    assert per_task == [{"task": "paws", "source": "en", "d": pytest.approx((75 + 100 / 3) / 2), "targets": "de fr"}]


def test_numeric_answers_of_a_qa_task(tmp_path):
    from workflow_scripts.files import write_jsonl

    answers = ["1990", "3,000", "12:30", "March 5, 1990", "Paris", "١٩٩٠"]  # Arabic-Indic digits are digits too
    write_jsonl(tmp_path / "ar" / "test.jsonl",
                [{"id": str(i), "input": "q", "target": f"<extra_id_0>{a}"} for i, a in enumerate(answers)])
    manifest = {"runs": [{"task": "tydiqa", "kind": "qa"}, {"task": "tg", "kind": "generation"}],
                "cast_test": {"tydiqa": {"ar": str(tmp_path / "ar" / "test.jsonl")}, "tg": {"ar": "not read"}}}
    table = aggregate.numeric_answers(manifest)
    assert table.to_dict("records") == [{"task": "tydiqa", "language": "ar", "answers": 6,
                                         "number_alone": pytest.approx(400 / 6), "with_digits": pytest.approx(500 / 6)}]


def test_numeric_answers_of_a_declared_qa_task_that_no_run_trains_on(tmp_path):
    """The demo declares a qa task, prepares and casts its test sets, and fine-tunes nothing on it: §5.4's counts
    are a property of the data, so they are still reported (they were an empty table saying 'no QA task')."""
    from workflow_scripts.files import write_jsonl

    write_jsonl(tmp_path / "de.jsonl", [{"id": "1", "input": "q", "target": "<extra_id_0>1990"},
                                        {"id": "2", "input": "q", "target": "<extra_id_0>Berlin"}])
    manifest = {"runs": [{"task": "tg", "kind": "generation"}], "kinds": {"qa": "qa", "tg": "generation"},
                "cast_test": {"qa": {"de": str(tmp_path / "de.jsonl")}, "tg": {"de": "not read"}}}
    assert aggregate.numeric_answers(manifest).to_dict("records") == [
        {"task": "qa", "language": "de", "answers": 2, "number_alone": 50.0, "with_digits": 50.0}]


def test_the_manifest_names_every_declared_tasks_kind():
    from workflow_scripts.config import load_config
    from workflow_scripts.plan import Study

    study = Study(load_config(Path(__file__).parent.parent / "config.yaml"))
    assert study.manifest()["kinds"]["qa"] == "qa"
    assert "qa" not in {run["task"] for run in study.manifest()["runs"]}


def test_a_study_without_zero_shot_targets_writes_every_table(tmp_path):
    """A run evaluated on its own source only (TyDiQA on English): the zero-shot tables are empty, not a crash."""
    en = {"en": {10: 50.0, 20: 60.0}}
    run = make_run(tmp_path, "tg-en-s1", ["en"], ["en"], en, en, {"en": {"en-dev": 20, "cos-sim": None,
                                                                       "tgt-dev": 20}}, {},
                   {"en": {"lid_en": 90.0, "accidental_translation": 0.0}})
    out = tmp_path / "tables"
    cast_test = tmp_path / "cast-en.jsonl"
    cast_test.write_text(json.dumps({"id": "1", "input": "x", "target": "y", "record": {}}) + "\n")
    manifest = {"runs": [run], "cast_test": {"tg": {"en": str(cast_test)}},
                "report": {"source": "en", "targets": ["de"]}}
    aggregate.write_tables(manifest, out)
    figures.write_figures(manifest, tmp_path / "figures")
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["loss_tg.png"]
    assert pd.read_csv(out / "scores.csv")["mean"].tolist() == [60.0]
    for empty in ("language_id", "selection", "selection_delta", "spearman"):
        assert (out / f"{empty}.csv").read_text().strip() == "", empty
    readme = (out / "README.md").read_text()
    assert "## Scores" in readme
    # an empty table says why
    assert "_no rows: no run fine-tuned on report.source (en) alone has last-layer XLRS and zero-shot dev scores in " \
           "report.targets (de)_" in readme
    assert "_no rows: no zero-shot target of a generation task was tested_" in readme


def test_the_studys_tables_agree_with_its_per_run_files(finished_study):
    """On the real tiny study: each selection row is the test score, in the run's own score file, at the step
    the run's select file names for that rule; each score-table cell is the test score at the en-dev step."""
    from conftest import tiny_config
    from workflow_scripts.config import validate
    from workflow_scripts.plan import Study

    study = Study(validate(tiny_config()))
    tables = finished_study / study.summary_dir / "tables"
    selection = pd.read_csv(tables / "selection.csv")
    scores = pd.read_csv(tables / "scores.csv").set_index(["task", "combination", "target"])
    checked = 0
    for run in study.runs.values():  # one seed each: a table cell is the run's own value
        metric = study.metric(run)
        for lang in study.eval_languages(run):
            picks = json.loads((finished_study / study.select_path(run, lang)).read_text())["selection"]
            test = pd.read_csv(finished_study / study.score_path(run, lang, "test"), sep="\t").set_index("step")
            assert scores.loc[(run.task, run.combination, lang), "mean"] == pytest.approx(
                test.loc[picks["en-dev"], metric], abs=1e-4)
            rows = selection[(selection.task == run.task) & (selection.combination == run.combination) &
                             (selection.target == lang)].set_index("rule")
            for rule, step in picks.items():
                if rule in rows.index:
                    assert rows.loc[rule, "score"] == pytest.approx(test.loc[step, metric], abs=1e-4), (run.id, rule)
                    checked += 1
    assert checked >= 6


def test_a_target_whose_source_language_id_cannot_name_keeps_its_row(manifest):
    """A source fastText has no label for scores NaN, as does its accidental-translation share: the target's
    row is in Table 9 with what was measured (its own language)."""
    manifest["runs"] = manifest["runs"][:1]
    lid = {"lid_de": 10.0, "lid_en": float("nan"), "accidental_translation": float("nan")}
    path = manifest["runs"][0]["languages"]["de"]["test"]
    pd.read_csv(path, sep="\t").assign(**lid).to_csv(path, sep="\t", index=False)
    table = aggregate.language_id_table(aggregate.load_measurements(manifest)).set_index("target")
    assert list(table.index) == ["de"] and table.loc["de", "lid_target"] == 10.0
    assert math.isnan(table.loc["de", "accidental_translation"])


def test_a_small_p_value_is_not_rounded_to_zero_in_the_markdown():
    table = pd.DataFrame({"task": ["pos"], "rho": [0.7412], "p_value": [0.0012], "points": [16]})
    row = aggregate.markdown(table).splitlines()[2]
    assert "0.74" in row and "0.0012" in row and "0.00 " not in row
