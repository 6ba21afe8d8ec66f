"""config/paper.yaml plans exactly the paper's experiments, without data or network at DAG time."""
from collections import Counter

import pytest

from conftest import REPO, dry_run, stage_of
from workflow_scripts.config import load_config
from workflow_scripts.estimate import ENCODER_SHARE, estimate, t5_parameters
from workflow_scripts.plan import Study

PAPER = REPO / "config" / "paper.yaml"
SEEDS = 3
# Source rows of Table 3 (WikiLingua), Tables 5/6 (MTG TG, SG), and the English-only classification runs.
ROWS = {"wikilingua": 5, "mtg_tg": 6, "mtg_sg": 6, "udpos": 1, "pawsx": 1, "tydiqa": 1}
# Languages decoded per run (targets plus sources): Table 3 has 17 targets without DE, so DE rows add DE, and
# the EN row adds it for Tables 4 and 7.
EVAL = {"wikilingua": 18 + 17 + 18 + 18 + 18, "mtg_tg": 5 * 6, "mtg_sg": 5 * 6, "udpos": 5, "pawsx": 5, "tydiqa": 1}
# XLRS per run: every language of the MTG parallel sentences that a run evaluates or lists in xlrs_targets,
# except its only source (WikiLingua: DE, ES, FR, ZH and the sources; EN+ZH and EN+DE have all five).
XLRS = {"wikilingua": 4 + 5 + 3 + 4 + 5, "mtg_tg": 4 + 4 + 4 + 5 + 5 + 5, "mtg_sg": 27, "udpos": 4,
        "pawsx": 4, "tydiqa": 4}
OUTPUTS_PER_JOB = {"prepare": 2, "cast": 2, "finetune": 2, "aggregate": 9}


@pytest.fixture(scope="module")
def planned_jobs(tmp_path_factory):
    import yaml

    config = yaml.safe_load(PAPER.read_text())
    files = dry_run(tmp_path_factory.mktemp("paper"), config)
    return {stage: count // OUTPUTS_PER_JOB.get(stage, 1) for stage, count in Counter(map(stage_of, files)).items()}


def test_fine_tuning_runs_are_the_papers(planned_jobs):
    assert planned_jobs["finetune"] == SEEDS * sum(ROWS.values()) == 60
    assert "build_model" not in planned_jobs  # google/mt5-base is loaded, not built


def test_measurement_jobs_follow_the_tables(planned_jobs):
    assert planned_jobs["xlrs"] == SEEDS * sum(XLRS.values())
    assert planned_jobs["select"] == SEEDS * sum(EVAL.values())
    assert planned_jobs["decode"] == planned_jobs["score"] == 2 * SEEDS * sum(EVAL.values())
    # dev and test of every task language; training splits of the sources only (WikiLingua and MTG: en, de, zh)
    assert planned_jobs["prepare"] == planned_jobs["cast"] == 2 * (18 + 5 + 5 + 5 + 5 + 9) + 3 + 3 + 3 + 1 + 1 + 1


def test_the_estimate_counts_the_same_jobs(planned_jobs):
    plan = estimate(Study(load_config(PAPER)))
    for stage in ("finetune", "xlrs", "decode", "score", "select", "prepare"):
        assert plan["jobs"][stage] == planned_jobs[stage], stage
    assert plan["parameters"] == t5_parameters(768, 2048, 64, 12, 12, 250112)
    assert abs(plan["parameters"] - 582_401_280) / 582_401_280 < 1e-3  # mT5-base, norms and biases aside
    assert plan["gpu_hours"]["total"] > 0 and plan["disk_gb"]["checkpoints"] > 0
    # Every XLRS job starts a process, loads step 0 whole and the encoders of the run's 10 checkpoints.
    jobs, loads = planned_jobs["xlrs"], plan["checkpoint_loads"]["xlrs"]
    assert loads == jobs and plan["encoder_only_loads"] == 10 * jobs
    start, load, encoder_load = plan["start_and_load_seconds"]
    assert 0.4 < ENCODER_SHARE < 0.5  # the shared embedding and the encoder: under half of mT5-base's parameters
    assert 0 < encoder_load < load  # measured (benchmarks/record.json) or that share of the anchors' whole load
    assert plan["start_and_load_hours"]["xlrs"] == round((jobs * (start + load + 10 * encoder_load)) / 3600, 1)
    assert plan["gpu_hours"]["xlrs"] >= plan["start_and_load_hours"]["xlrs"] > 0
    # Fine-tuning starts, loads mT5-base, saves 10 checkpoints and, before the last, 6x their bytes of resume state.
    runs, save = planned_jobs["finetune"], plan["checkpoint_save_seconds"]
    assert plan["start_and_load_hours"]["finetune"] == round(runs * (start + load + (10 + 6 * 9) * save) / 3600, 1)


def test_the_english_runs_measure_every_language_of_tables_4_7_and_8():
    """Tables 4, 7 and 8 read DE, ES, FR, ZH from the English-only runs: XLRS for all, scores where decoded."""
    config = load_config(PAPER)
    study = Study(config)
    english = [run for run in study.runs.values() if run.sources == ("en",)]
    assert {run.task for run in english} == set(ROWS)
    for run in english:
        assert set(config["report"]["targets"]) <= set(study.xlrs_languages(run)), run.id
        if run.task != "tydiqa":  # TyDiQA has no data in those languages: Figure 5 only
            assert set(config["report"]["targets"]) <= set(study.eval_languages(run)), run.id


def test_the_estimate_reads_a_prepared_test_sets_size(tmp_path, monkeypatch):
    """Before prepare, a test set counts as decode.test_size (an upper bound, named); once prepared, as its count."""
    import json
    from pathlib import Path

    from workflow_scripts.estimate import assumed_test_sizes, test_sequences

    monkeypatch.chdir(tmp_path)
    study = Study(load_config(PAPER))
    cap = study.config["decode"]["test_size"]
    assert test_sequences(study, "wikilingua", "de") == cap and "wikilingua/de" in assumed_test_sizes(study)
    meta = Path(study.data_path("wikilingua", "de", "test")).with_suffix(".meta.json")
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"count": 3452}))
    assert test_sequences(study, "wikilingua", "de") == 3452 and "wikilingua/de" not in assumed_test_sizes(study)
