"""The Snakemake DAG itself: which jobs a change plans, through Snakemake's own dry run.

A session fixture (conftest.finished_study) runs the tiny workflow for real (two to three minutes on 2 cores);
the tests then change the config and ask the dry run what it would do.
"""
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path


from conftest import REPO, dry_run, stage_of, tiny_config, write_config


def stages(planned):
    return Counter(stage_of(path) for path in planned)


def test_fresh_config_plans_every_stage(tmp_path):
    counts = stages(dry_run(tmp_path, tiny_config()))
    # 2 tasks x 3 languages; 3 runs: title en, title en+zh, pos en. Dev and test of all 6, training splits of the
    # sources only (title en, zh; pos en): a zero-shot target needs no training data
    assert counts["prepare"] == (6 * 2 + 3) * 2 and counts["cast"] == (6 * 2 + 3) * 2  # records and meta each
    assert counts["build_model"] == 1
    assert counts["finetune"] == 3 * 2
    # XLRS: every eval language except a run's only source (title/en: de zh, title/en+zh: en de zh, pos: de)
    assert counts["xlrs"] == 2 + 3 + 1
    # dev and test per eval language: 3 + 3 + 2 languages
    assert counts["decode"] == 2 * 8 and counts["score"] == 2 * 8 and counts["select"] == 8
    assert counts["aggregate"] == 9 + 1 + 1  # eight tables and their README, one figures directory, the manifest


def test_second_run_plans_no_job(finished_study):
    assert dry_run(finished_study, tiny_config()) == []


def test_changing_lr_plans_new_runs_under_new_paths_only(finished_study):
    config = tiny_config()
    config["train"]["learning_rate"] = 5e-4
    planned = dry_run(finished_study, config)
    counts = stages(planned)
    assert counts["finetune"] == 3 * 2
    assert counts["prepare"] == counts["cast"] == counts["build_model"] == 0
    # nothing planned exists: no old result is overwritten
    assert not [path for path in planned if (finished_study / path).exists()]


def test_adding_a_target_language_plans_no_finetuning_and_no_existing_decode(finished_study):
    config = tiny_config()
    config["experiments"][1]["targets"].append("zh")
    planned = dry_run(finished_study, config)
    counts = stages(planned)
    assert counts["finetune"] == 0 and counts["build_model"] == 0
    assert counts == Counter({"xlrs": 1, "decode": 2, "score": 2, "select": 1, "aggregate": 11})
    assert all("/pos-en-s1-" in path and "/zh-" in path for path in planned if stage_of(path) != "aggregate")


def test_adding_a_combination_plans_only_its_run_and_downstream(finished_study):
    config = tiny_config()
    config["experiments"][1]["sources"].append(["en", "de"])
    planned = dry_run(finished_study, config)
    assert {Path(p).parts[2] for p in planned if Path(p).parts[1] == "runs"} == \
           {next(Path(p).parts[2] for p in planned if "pos-en+de-" in p)}
    assert stages(planned)["aggregate"] == 11
    assert stages(planned)["finetune"] == 2


def test_changing_a_decoding_option_plans_no_finetuning_and_no_xlrs(finished_study):
    config = tiny_config()
    config["decode"]["max_new_tokens"] = 8
    counts = stages(dry_run(finished_study, config))
    assert counts["finetune"] == counts["xlrs"] == 0
    assert counts["decode"] == 16 and counts["score"] == 16


def test_a_smaller_test_set_plans_its_data_test_decodes_and_scores_and_no_training(finished_study):
    config = tiny_config()
    config["tasks"]["pos"]["dataset"]["sizes"]["test"] = 10
    planned = dry_run(finished_study, config)
    # pos in en, de, zh: one prepare and one cast job (records and meta) each; the pos run decodes en and de
    assert stages(planned) == Counter({"prepare": 3 * 2, "cast": 3 * 2, "decode": 2, "score": 2, "aggregate": 11})
    assert all("/test-" in path for path in planned if stage_of(path) in ("prepare", "cast"))
    assert all("/decode/test/" in path or "/scores/test/" in path for path in planned
               if stage_of(path) in ("decode", "score"))


def test_invalid_config_stops_before_any_job_naming_the_key(tmp_path):
    config = tiny_config()
    config["experiments"][0]["targets"].append("ko")
    write_config(tmp_path, config)
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "-n"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "experiments[0].targets: language 'ko' is not among tasks.title_generation.languages" in \
           result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_config_on_the_command_line_edits_the_default_config_file(tmp_path):
    """`--config key=value` without `--configfile` changes config.yaml's value, and keeps the rest of it."""
    write_config(tmp_path, tiny_config())  # the working directory's config.yaml, the Snakefile's default
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path), "--config", "results=elsewhere", "-n"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "elsewhere/runs/title_generation-en-s1-" in result.stdout and "results/runs/" not in result.stdout


def test_a_table_deleted_by_hand_is_made_again(finished_study):
    from workflow_scripts.config import validate
    from workflow_scripts.plan import Study

    table = finished_study / Study(validate(tiny_config())).summary_dir / "tables" / "spearman.csv"
    kept = table.read_bytes()
    table.unlink()
    try:
        planned = dry_run(finished_study, tiny_config())
    finally:
        table.write_bytes(kept)
    assert any(path.endswith("/tables/spearman.csv") for path in planned)
    assert {stage_of(path) for path in planned} == {"aggregate"}


def test_a_newer_input_reruns_nothing(finished_study):
    """A path names its content, so a newer file (copied without its times, unpacked, touched) is the same file.
    Snakemake compares files over 1 MB by time alone: a training set that size, newer than its run, would
    otherwise retrain the run in place."""
    import os
    import time

    train = next(finished_study.glob("results/cast/title_generation/en/train-*.jsonl"))
    kept = train.read_bytes()
    try:
        train.write_bytes(kept * (1 + 1_100_000 // len(kept)))
        later = time.time() + 3600
        os.utime(train, (later, later))
        planned = dry_run(finished_study, tiny_config())
    finally:
        train.write_bytes(kept)
    assert planned == []


def test_batch_sizes_of_decoding_and_xlrs_plan_nothing(finished_study):
    config = tiny_config()
    config["decode"]["batch_size"] = 3
    config["xlrs"]["batch_size"] = 5
    assert dry_run(finished_study, config) == []


def test_the_conda_environment_holds_our_pins_and_every_shell_rule_names_it():
    """`--sdm conda` (not run here: no conda) builds envs/pipeline.yaml from a copy, so it names every pin itself."""
    import yaml

    environment = yaml.safe_load((REPO / "envs" / "pipeline.yaml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert pip == pins, "envs/pipeline.yaml is out of date: make envs/pipeline.yaml"
    for rules in (REPO / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("shell:") == text.count('conda:\n        "../envs/pipeline.yaml"'), rules.name


def test_jobs_import_this_checkout_first_however_often_the_snakefile_is_read(monkeypatch):
    from workflow_scripts.cli import run_modules_from

    monkeypatch.setenv("PYTHONPATH", "/site/extra")
    for _ in range(2):  # a SLURM job reads the Snakefile again, under the PYTHONPATH it inherited
        run_modules_from(str(REPO))
    assert os.environ["PYTHONPATH"] == f"{REPO}{os.pathsep}/site/extra"
