"""Scoring a decode file per checkpoint, and the three checkpoint-selection rules, on hand-made inputs."""
import pandas as pd
import pytest

from workflow_scripts import score, select


def decodes(kind, rows):
    return [{"step": step, "prediction": prediction, "record": record} for step, prediction, record in rows]


def test_tagging_scores_per_step_and_malformed_output_scores_zero():
    record = {"tokens": ["Der", "Hund"], "tags": ["DET", "NOUN"]}
    rows = score.score_file(decodes("tagging", [(10, "<extra_id_0>DET <extra_id_1>NOUN", record),
                                                (20, "<extra_id_0>DET <extra_id_1>VERB", record),
                                                (20, "garbage", record)]),
                            {"kind": "tagging", "lang": "de", "sources": ["en"]})
    assert [(r["step"], r["accuracy"]) for r in rows] == [(10, 100.0), (20, 25.0)]
    assert rows[1]["n_malformed"] == 1


def test_paraphrase_and_empty_predictions():
    rows = score.score_file(decodes("paraphrase", [(5, "<extra_id_0>Yes.", {"label": 1}), (5, "", {"label": 0})]),
                            {"kind": "paraphrase", "lang": "fr", "sources": ["en"]})
    assert rows[0]["accuracy"] == 50.0 and rows[0]["n_empty"] == 1 and rows[0]["n_invalid"] == 1


def test_qa_strips_the_sentinel_before_matching():
    rows = score.score_file(decodes("qa", [(1, "<extra_id_0>in the garden", {"answer_text": "in the garden"})]),
                            {"kind": "qa", "lang": "en", "sources": ["en"]})
    assert rows[0]["exact_match"] == 100.0 and rows[0]["f1"] == 100.0


class WordTokenizer:
    def tokenize(self, text):
        return text.split()


def test_generation_measures_language_id_on_test_sets_only():
    from workflow_scripts.metrics import load_lid_model

    rows = decodes("generation", [(3, "<extra_id_0>Der Hund schläft im Garten.", {"summary": "Der Hund schläft."})])
    dev_spec = {"kind": "generation", "lang": "de", "sources": ["en"], "rouge_l": "rougeL"}
    dev = score.score_file(rows, dev_spec, WordTokenizer())
    test = score.score_file(rows, {**dev_spec, "lid_model": None}, WordTokenizer(), load_lid_model())
    assert dev[0]["rouge1"] == test[0]["rouge1"] == pytest.approx(100 * 2 * (2 / 5 * 2 / 3) / (2 / 5 + 2 / 3))
    assert not [c for c in dev[0] if c.startswith("lid_") or c == "accidental_translation"]
    assert test[0]["lid_de"] > 50 and test[0]["accidental_translation"] == 0.0


def test_score_command_counts_the_pieces_of_the_models_own_tokenizer(tiny_model_dir, tmp_path, monkeypatch):
    """SP-ROUGE (Vu et al. 2022): Chinese, which rouge_score's own tokenizer drops, is scored over the model's
    SentencePiece pieces; rouge1 is checked against a count of those pieces done here."""
    import collections
    import json
    import sys

    from workflow_scripts import cli, modeling
    from workflow_scripts.files import write_jsonl

    reference, partial = "小狗看见红色的球。", "小狗看见一本书。"
    record = {"id": "1", "document": "狗", "summary": reference}
    write_jsonl(tmp_path / "decodes.jsonl", [{"step": 5, "prediction": f"<extra_id_0>{reference}", "record": record},
                                             {"step": 6, "prediction": f"<extra_id_0>{partial}", "record": record}])
    spec = {"kind": "generation", "lang": "zh", "sources": ["en"], "rouge_l": "rougeL"}
    monkeypatch.setattr(sys, "argv", ["score", "--spec", json.dumps(spec), "--decodes", str(tmp_path / "decodes.jsonl"),
                                      "--model", str(tiny_model_dir), "--out", str(tmp_path / "scores.tsv")])
    cli.run(score.main)
    rouge1 = pd.read_csv(tmp_path / "scores.tsv", sep="\t").set_index("step")["rouge1"]
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    ours, theirs = ([p for p in tokenizer.tokenize(text) if p != "\u2581"] for text in (partial, reference))
    shared = sum((collections.Counter(ours) & collections.Counter(theirs)).values())
    assert 0 < shared < len(theirs)
    assert rouge1[5] == pytest.approx(100.0)
    assert rouge1[6] == pytest.approx(100 * 2 * shared / (len(ours) + len(theirs)))


def table(scores, metric="rougeL"):
    return pd.DataFrame({"step": list(scores), metric: list(scores.values())})


def xlrs_table(values):
    return pd.DataFrame([{"step": s, "xlrs": v, "last_layer": True} for s, v in values.items()] +
                        [{"step": s, "xlrs": -v, "last_layer": False} for s, v in values.items()])


def test_three_rules_pick_their_checkpoints():
    chosen = select.select([table({100: 30.0, 200: 35.0, 300: 34.0})],
                           table({100: 20.0, 200: 18.0, 300: 22.0}),
                           xlrs_table({0: 0.5, 100: 0.6, 200: 0.7, 300: 0.9}), "rougeL")
    # cos-sim ignores step 0 (the model before fine-tuning is not a candidate)
    assert chosen == {"en-dev": 200, "cos-sim": 100, "tgt-dev": 300}


def test_cos_sim_of_two_sources_is_their_mean_xlrs_to_the_target():
    """EN and ZH to DE: 100 has the lowest EN XLRS, 200 the lowest mean of the two."""
    xlrs = pd.DataFrame([{"step": s, "source": source, "xlrs": v, "last_layer": True}
                         for source, values in {"en": {100: 0.5, 200: 0.6}, "zh": {100: 0.9, 200: 0.6}}.items()
                         for s, v in values.items()])
    dev = table({100: 1.0, 200: 1.0})
    assert select.select([dev, dev], dev, xlrs, "rougeL")["cos-sim"] == 200


def test_select_command_writes_each_rules_step(tmp_path, monkeypatch):
    import json
    import sys

    from workflow_scripts import cli

    paths = {}
    for name, frame in {"en": table({100: 30.0, 200: 35.0}), "de": table({100: 20.0, 200: 18.0}),
                        "xlrs": xlrs_table({0: 0.1, 100: 0.6, 200: 0.7})}.items():
        paths[name] = tmp_path / f"{name}.tsv"
        frame.to_csv(paths[name], sep="\t", index=False)
    out = tmp_path / "select.json"
    monkeypatch.setattr(sys, "argv", ["select", "--spec", json.dumps({"metric": "rougeL"}), "--source-dev",
                                      str(paths["en"]), "--target-dev", str(paths["de"]), "--xlrs", str(paths["xlrs"]),
                                      "--out", str(out)])
    cli.run(select.main)
    written = json.loads(out.read_text())
    assert written["selection"] == {"en-dev": 200, "cos-sim": 100, "tgt-dev": 100} and written["cos_sim"] == "lowest"


def test_a_test_set_is_decoded_only_at_the_checkpoints_a_rule_picked(tmp_path):
    import json

    from workflow_scripts import decode

    (tmp_path / "run.json").write_text(json.dumps({"checkpoints": [2, 4, 6]}))
    (tmp_path / "select.json").write_text(json.dumps({"selection": {"en-dev": 6, "cos-sim": None, "tgt-dev": 4}}))
    assert decode.steps_to_decode(tmp_path, None) == [2, 4, 6]  # a dev set: every checkpoint
    assert decode.steps_to_decode(tmp_path, tmp_path / "select.json") == [4, 6]


def test_cos_sim_picks_the_highest_xlrs_where_the_task_transfers_better_at_high_xlrs():
    dev, xlrs = table({100: 1.0, 200: 1.0, 300: 1.0}), xlrs_table({0: 0.95, 100: 0.7, 200: 0.6, 300: 0.9})
    assert select.select([dev], dev, xlrs, "rougeL", "highest")["cos-sim"] == 300
    assert select.select([dev], dev, xlrs, "rougeL", "lowest")["cos-sim"] == 200
    with pytest.raises(ValueError, match="'middle'"):
        select.select([dev], dev, xlrs, "rougeL", "middle")


def test_two_sources_average_their_dev_scores_and_ties_go_to_the_earliest():
    chosen = select.select([table({1: 10.0, 2: 30.0}), table({1: 30.0, 2: 10.0})], table({1: 5.0, 2: 5.0}),
                           None, "rougeL")
    assert chosen == {"en-dev": 1, "cos-sim": None, "tgt-dev": 1}


def test_a_stage_module_names_itself_as_run_in_its_usage_line():
    import subprocess
    import sys

    usage = subprocess.run([sys.executable, "-m", "workflow_scripts.select", "--help"], capture_output=True,
                           text=True, check=True).stdout
    assert usage.startswith("usage: python -m workflow_scripts.select ")
