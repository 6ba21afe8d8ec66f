"""Content addresses: digests change exactly when something that determines an output changes."""
import copy
import itertools
import json
import os

import pytest

from conftest import tiny_config
from workflow_scripts.config import validate
from workflow_scripts.metrics import FASTTEXT_MAGIC
from workflow_scripts.plan import Study


def study(mutate=lambda c: None) -> Study:
    config = copy.deepcopy(tiny_config())
    mutate(config)
    return Study(validate(config))


def test_digests_are_the_same_in_every_process():
    """A path must name the same result tomorrow, on another machine, under another PYTHONHASHSEED: a golden
    value, and a plan made in two fresh interpreters with different hash seeds."""
    import json
    import os
    import subprocess
    import sys

    from workflow_scripts.digest import digest

    assert digest({"b": [1, 2.5, "\u00fc"], "a": None}) == "3ca4eda1eb"
    code = ("import json; from conftest import tiny_config; from workflow_scripts.config import validate; "
            "from workflow_scripts.plan import Study; "
            "print(json.dumps(Study(validate(tiny_config())).final_outputs()))")
    tests = os.path.dirname(__file__)
    plans = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": tests}
        found = subprocess.run([sys.executable, "-c", code], cwd=tests, env=env, check=True, capture_output=True,
                               text=True)
        plans.append(json.loads(found.stdout))
    assert plans[0] == plans[1] == study().final_outputs()


def test_every_input_of_a_decode_or_select_job_is_digested_by_its_spec():
    """A job's path must move when any file it reads moves: each input's digest (a run's, for its run.json) is in
    the job's spec."""
    import re

    plan = study()
    for run in plan.runs.values():
        for lang in plan.eval_languages(run):
            jobs = [(plan.decode_spec(run, lang, split), plan.decode_inputs(run, lang, split))
                    for split in ("dev", "test")]
            jobs.append((plan.select_spec(run, lang), plan.select_inputs(run, lang)))
            for spec, inputs in jobs:
                paths = [path for value in inputs.values() for path in ([value] if isinstance(value, str) else value)]
                assert len(paths) >= 2
                digested = json.dumps(spec)
                for path in paths:
                    assert re.findall(r"[0-9a-f]{10}", path)[-1] in digested, (spec["stage"], path)


def test_learning_rate_moves_runs_and_everything_after_them_only():
    before, after = study(), study(lambda c: c["train"].update(learning_rate=5e-4))
    assert set(before.runs).isdisjoint(after.runs)
    assert before.model_ref == after.model_ref
    assert [p for p in before.final_outputs() if "/cast/" in p] == [p for p in after.final_outputs() if "/cast/" in p]


def test_a_new_test_set_moves_test_decodes_and_scores_and_trains_nothing():
    def test_split(config):
        config["tasks"]["pos"]["dataset"].update(sizes={"train": 64, "dev": 12, "test": 50}, splits={"test": "dev"})

    before, after = study(), study(test_split)
    pos = next(run for run in before.runs.values() if run.task == "pos")
    assert set(before.runs) == set(after.runs)
    for split, moved in (("train", False), ("dev", False), ("test", True)):
        assert (before.cast_path("pos", "de", split) != after.cast_path("pos", "de", split)) == moved
    assert before.decode_path(pos, "de", "dev") == after.decode_path(pos, "de", "dev")
    assert before.select_path(pos, "de") == after.select_path(pos, "de")
    assert before.decode_path(pos, "de", "test") != after.decode_path(pos, "de", "test")
    assert after.data_spec("pos", "de", "test")["dataset"] == {"loader": "demo", "name": "pos", "seed": 0,
                                                               "sizes": {"test": 50}, "splits": {"test": "dev"}}
    # a new training set moves the runs trained on it only
    moved = study(lambda c: c["tasks"]["pos"]["dataset"]["sizes"].update(train=60))
    assert {r for r in before.runs if r.startswith("pos-")}.isdisjoint(moved.runs)
    assert {r for r in before.runs if r.startswith("title_")} < set(moved.runs)


def test_adding_a_target_changes_no_run_and_no_existing_path():
    before = study()
    after = study(lambda c: c["experiments"][1]["targets"].append("zh"))
    assert set(before.runs) == set(after.runs)
    per_run = lambda s: {p for p in s.final_outputs() if "/summary-" not in p}
    assert per_run(before) < per_run(after)
    added = per_run(after) - per_run(before)
    assert added and all("/zh-" in path for path in added)
    # the study-level summary is new too, under a new path
    assert before.summary_dir != after.summary_dir


def test_adding_a_combination_adds_runs_and_keeps_the_others():
    before = study()
    after = study(lambda c: c["experiments"][1]["sources"].append(["en", "de"]))
    assert set(before.runs) < set(after.runs)
    assert [r for r in after.runs if r not in before.runs][0].startswith("pos-en+de-s1-")


def test_decoding_option_moves_decodes_not_runs_or_xlrs():
    before, after = study(), study(lambda c: c["decode"].update(num_beams=2))
    assert set(before.runs) == set(after.runs)
    run = next(iter(before.runs.values()))
    assert before.xlrs_path(run, "de") == after.xlrs_path(run, "de")
    assert before.decode_path(run, "de", "dev") != after.decode_path(run, "de", "dev")


def test_decoding_writes_as_long_as_a_run_learned_to_unless_told_otherwise():
    def long_tags(config):
        config["decode"]["max_new_tokens"] = None
        config["experiments"][1]["train"] = {"max_target_length": 40}

    default = study(long_tags)
    lengths = {run.task: default.decode_spec(run, "de", "dev")["max_new_tokens"] for run in default.runs.values()}
    assert lengths == {"title_generation": 24, "pos": 40}
    told = study(lambda c: (long_tags(c), c["decode"].update(max_new_tokens=12)))
    assert {told.decode_spec(run, "de", "dev")["max_new_tokens"] for run in told.runs.values()} == {12}


def test_seed_and_model_are_in_the_run_digest():
    base = set(study().runs)
    assert base.isdisjoint(study(lambda c: c["train"].update(seeds=[2])).runs)
    assert base.isdisjoint(study(lambda c: c["model"]["build"].update(seed=5)).runs)


def test_a_whole_number_written_as_a_float_keeps_the_digest():
    as_int = study(lambda c: c["train"].update(weight_decay=0, learning_rate=1))
    as_float = study(lambda c: c["train"].update(weight_decay=0.0, learning_rate=1.0))
    assert set(as_int.runs) == set(as_float.runs)
    assert set(as_int.runs).isdisjoint(study(lambda c: c["train"].update(weight_decay=0.5)).runs)


def test_multi_source_run_names_its_sources():
    runs = study().runs.values()
    assert sorted(r.combination for r in runs if r.task == "title_generation") == ["en", "en+zh"]


def test_the_model_family_is_in_the_run_digest(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)  # the plan keeps its file hashes under results/

    config_file = tmp_path / "config.json"
    for name in ("model.safetensors", "spiece.model"):  # what config.check_model asks of a model directory
        (tmp_path / name).write_bytes(b"")
    use_local = lambda c: c.update(model={"name": "local", "path": str(tmp_path)})
    config_file.write_text(json.dumps({"model_type": "mt5"}))
    mt5 = study(use_local)
    family, runs = mt5.model_spec["family"], set(mt5.runs)
    config_file.write_text(json.dumps({"model_type": "umt5"}))  # same path, another family
    umt5 = study(use_local)
    assert family == "mt5" and umt5.model_spec["family"] == "umt5"
    assert runs.isdisjoint(umt5.runs)


def test_the_cos_sim_end_moves_selections_and_test_decodes_only():
    default = study()
    paper_rule = study(lambda c: c["tasks"]["pos"].update(cos_sim="lowest"))
    (pos,) = [run for run in default.runs.values() if run.task == "pos"]
    assert default.select_spec(pos, "de")["cos_sim"] == "highest"  # tagging transfers better at high XLRS
    assert "cos_sim" not in paper_rule.select_spec(pos, "de")       # the paper's rule keeps its old digest
    assert set(default.runs) == set(paper_rule.runs)
    assert default.xlrs_path(pos, "de") == paper_rule.xlrs_path(pos, "de")
    assert default.decode_path(pos, "de", "dev") == paper_rule.decode_path(pos, "de", "dev")
    assert default.decode_path(pos, "de", "test") != paper_rule.decode_path(pos, "de", "test")
    title = next(run for run in default.runs.values() if run.task == "title_generation")
    assert default.select_path(title, "de") == paper_rule.select_path(title, "de")


def test_a_users_own_files_are_in_the_digests_by_content(tmp_path, monkeypatch):
    import os
    import shutil

    monkeypatch.chdir(tmp_path)
    model_dir, lid_model, data = tmp_path / "model", tmp_path / "lid.176.bin", tmp_path / "data[v1]"
    model_dir.mkdir()
    data.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "mt5"}')
    for name in ("model.safetensors", "spiece.model"):
        (model_dir / name).write_bytes(b"")
    lid_model.write_bytes(FASTTEXT_MAGIC + b"v1")
    for lang in ("en", "de", "zh"):
        for split in ("train", "dev", "test"):
            (data / f"{lang}.{split}.jsonl").write_text("{}\n")

    def local(config):
        config["model"] = {"name": "mine", "path": str(model_dir)}
        config["score"]["lid_model"] = str(lid_model)
        config["tasks"]["pos"]["dataset"] = {"loader": "jsonl", "path": str(data / "{lang}.{split}.jsonl")}

    def paths(plan):
        title = next(run for run in plan.runs.values() if run.task == "title_generation")
        return {"runs": set(plan.runs), "score": plan.score_path(title, "de", "test"),
                **{f"{lang} {split}": plan.data_path("pos", lang, split) for lang in ("en", "de")
                   for split in ("train", "test")}}

    before = paths(study(local))
    assert (tmp_path / "results" / ".file_hashes.json").is_file()
    shutil.copy(data / "de.test.jsonl", tmp_path / "copy")  # same bytes, a newer time: nothing moves
    os.replace(tmp_path / "copy", data / "de.test.jsonl")
    assert paths(study(local)) == before
    (data / "de.test.jsonl").write_text("{}\n{}\n")
    lid_model.write_bytes(FASTTEXT_MAGIC + b"v2")
    after = paths(study(local))
    assert [key for key in after if after[key] != before[key]] == ["score", "de test"]  # brackets are no glob
    (model_dir / "config.json").write_text('{"model_type": "mt5", "d_model": 8}')
    assert paths(study(local))["runs"].isdisjoint(before["runs"])


def test_a_model_directorys_hidden_bookkeeping_moves_nothing(tmp_path, monkeypatch):
    """`hf download --local-dir` rewrites .cache/huggingface/download/*.metadata (a timestamp) on every run, even
    when nothing was downloaded, and a git clone's .git changes on `git status`: from_pretrained reads neither."""
    monkeypatch.chdir(tmp_path)
    model_dir = tmp_path / "mt5-base"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "mt5"}')
    for name in ("model.safetensors", "spiece.model"):
        (model_dir / name).write_bytes(b"")
    use_local = lambda c: c.update(model={"name": "mine", "path": str(model_dir)})
    runs = set(study(use_local).runs)
    metadata = model_dir / ".cache" / "huggingface" / "download" / "model.safetensors.metadata"
    metadata.parent.mkdir(parents=True)
    metadata.write_text("0123abcd\netag\n1767225600.5\n")
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "index").write_bytes(b"DIRC")
    assert set(study(use_local).runs) == runs
    (model_dir / "spiece.model").write_bytes(b"another vocabulary")
    assert set(study(use_local).runs).isdisjoint(runs)


@pytest.mark.parametrize("loader, layout", [("mtg", "SG/{lang}/{split}.jsonl"),
                                             ("xtreme", "PAWS-X.{lang}/{split}-00000-of-00001.parquet"),
                                             ("wiki_lingua", "{lang}/{split}/0000.parquet")])
def test_in_a_directory_of_many_languages_each_language_and_split_is_known_by_its_own_files(
        tmp_path, monkeypatch, loader, layout):
    """An unpacked MTG archive or a local copy of a hub repository: a language's new test file moves that test
    set only; a file no language and split reads moves nothing."""
    monkeypatch.chdir(tmp_path)
    upstream = {"train": "train", "dev": "dev" if loader == "mtg" else "validation", "test": "test"}
    for lang in ("en", "de", "zh"):
        for split in upstream.values():
            path = tmp_path / "data" / layout.format(lang=lang, split=split)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{lang} {split}")
    dataset = {"loader": loader, "name": {"mtg": "SG", "xtreme": "pawsx"}.get(loader, "wl"), "path": "data"}

    def paths():
        plan = study(lambda c: c["tasks"]["pos"].update(dataset=dataset))
        return {(lang, split): plan.data_path("pos", lang, split) for lang in ("en", "de", "zh") for split in upstream}

    before = paths()
    assert len(set(before.values())) == 9
    (tmp_path / "data" / layout.format(lang="de", split="test")).write_text("de test, corrected")
    (tmp_path / "data" / layout.format(lang="fr", split="test")).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / layout.format(lang="fr", split="test")).write_text("fr test")
    after = paths()
    assert [key for key in before if before[key] != after[key]] == [("de", "test")]


def test_a_parallel_tables_xlrs_jobs_are_known_by_their_own_languages_columns(tmp_path, monkeypatch):
    """xlrs.parallel as one table (loader file, a column per language): a new language's column, or a row only it
    fills, moves no XLRS path; a corrected sentence moves the jobs that read its language only; the rows' order
    (which pairs them and draws the sample) moves every job."""
    monkeypatch.chdir(tmp_path)
    table, edits = tmp_path / "parallel.tsv", itertools.count(1_000_000_000)
    sentences = {lang: [f"{lang} sentence {i}" for i in range(20)] for lang in ("en", "de", "zh")}

    def paths(columns):
        table.write_text("".join("\t".join(row) + "\n" for row in zip(*([lang, *cells]
                                                                          for lang, cells in columns.items()))))
        # a rewrite of the same size within the clock's tick would keep the cached columns, as it would a user's
        stamp = table.stat().st_mtime_ns + next(edits)
        os.utime(table, ns=(stamp, stamp))
        plan = study(lambda c: c["xlrs"].update(parallel={"loader": "file", "path": str(table)}))
        return {(run.id, lang): plan.xlrs_path(run, lang) for run in plan.runs.values()
                for lang in plan.xlrs_languages(run)}

    before = paths(sentences)
    assert paths({**sentences, "fr": [f"fr sentence {i}" for i in range(20)]}) == before
    with_a_french_row = {lang: [*cells, "fr sentence 20" if lang == "fr" else ""]
                         for lang, cells in {**sentences, "fr": [f"fr sentence {i}" for i in range(20)]}.items()}
    assert paths(with_a_french_row) == before  # an appended row no job's languages fill draws nothing new
    corrected = paths({**sentences, "de": ["de sentence 0, corrected", *sentences["de"][1:]]})
    assert {key for key in before if corrected[key] != before[key]} == {key for key in before if key[1] == "de"}
    reordered = paths({lang: cells[::-1] for lang, cells in sentences.items()})
    assert all(reordered[key] != before[key] for key in before)


def test_a_template_that_names_no_file_yet_adds_no_fingerprint():
    # a template that matches no file adds nothing: planned where its data is not, a study keeps its old paths
    plan = study(lambda c: c["tasks"]["pos"].update(dataset={"loader": "jsonl", "path": "nowhere/{lang}.{split}"}))
    assert "files" not in plan.data_spec("pos", "de", "test")


def test_rouge_and_language_id_settings_move_generation_scores_only():
    before, after = study(), study(lambda c: c["score"].update(rouge_l="rougeLsum"))
    pos = next(run for run in before.runs.values() if run.task == "pos")
    title = next(run for run in before.runs.values() if run.task == "title_generation")
    assert before.score_path(pos, "de", "dev") == after.score_path(pos, "de", "dev")
    assert before.decode_path(pos, "de", "test") == after.decode_path(pos, "de", "test")
    assert before.score_path(title, "de", "dev") != after.score_path(title, "de", "dev")


def test_another_language_id_model_rescores_test_sets_and_re_decodes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lid.176.bin").write_bytes(FASTTEXT_MAGIC + b"model")
    before, after = study(), study(lambda c: c["score"].update(lid_model=str(tmp_path / "lid.176.bin")))
    title = next(run for run in before.runs.values() if run.task == "title_generation")
    assert before.score_path(title, "de", "test") != after.score_path(title, "de", "test")
    for same in (lambda plan: plan.score_path(title, "de", "dev"), lambda plan: plan.select_path(title, "de"),
                 lambda plan: plan.decode_path(title, "de", "test")):
        assert same(before) == same(after)
    assert "lid_model" not in before.score_spec(title, "de", "dev")


def test_a_versioned_loaders_records_version_the_xlrs_measured_on_them_too(monkeypatch):
    from workflow_scripts import plan

    def hub_parallel(config):
        config["xlrs"]["parallel"] = {"loader": "wiki_lingua", "field": "document"}

    before = study(hub_parallel)
    run = next(iter(before.runs.values()))
    assert before.xlrs_spec(run, "de")["loader_version"] == plan.LOADER_VERSIONS["wiki_lingua"]
    path = before.xlrs_path(run, "de")
    monkeypatch.setitem(plan.LOADER_VERSIONS, "wiki_lingua", plan.LOADER_VERSIONS["wiki_lingua"] + 1)
    assert study(hub_parallel).xlrs_path(run, "de") != path


def test_a_loader_version_can_move_one_dataset_or_kind_alone():
    from workflow_scripts.plan import loader_version, parallel_kind

    assert loader_version({"loader": "xtreme", "name": "tydiqa"}, "qa") == {"loader_version": 3}
    assert loader_version({"loader": "xtreme", "name": "udpos"}, "tagging") == {"loader_version": 2}
    assert loader_version({"loader": "files"}, "paraphrase") == {"loader_version": 3}
    assert loader_version({"loader": "files"}, "generation") == {"loader_version": 2}
    assert loader_version({"loader": "demo"}, "generation") == {}
    paws = {"loader": "files", "path": "p/{lang}/{split}.tsv", "field": "sentence1"}  # XLRS on PAWS-X sentences
    assert loader_version(paws, parallel_kind(paws)) == {"loader_version": 3}


def test_a_target_language_needs_no_training_split():
    """A zero-shot target may have no training data at all: its train split is prepared only once it is a source."""
    def french_target(config):
        config["tasks"]["title_generation"]["languages"].append("fr")
        config["experiments"][0]["targets"].append("fr")

    plan = study(french_target)
    outputs = set(plan.final_outputs())
    assert {plan.cast_path("title_generation", "fr", split) in outputs for split in ("dev", "test")} == {True}
    assert plan.cast_path("title_generation", "fr", "train") not in outputs
    plan = study(lambda c: (french_target(c), c["experiments"][0]["sources"].append(["fr"])))
    assert plan.cast_path("title_generation", "fr", "train") in plan.final_outputs()


def test_a_kinds_new_template_moves_its_tasks_only(monkeypatch):
    import dataclasses

    from workflow_scripts import tasks

    before = dict(study().runs)
    monkeypatch.setitem(tasks.KINDS, "tagging", dataclasses.replace(tasks.KINDS["tagging"], template_version=2))
    after = study().runs
    moved = {run.task for run_id, run in before.items() if run_id not in after}
    assert moved == {"pos"} and len(after) == len(before)


def test_a_kinds_new_scoring_moves_its_scores_only(monkeypatch):
    """A kind's score_version moves its score files (and what reads them), never a run or a decode."""
    import dataclasses

    from workflow_scripts import tasks

    def scores(plan):
        return {(run.task, lang, split): plan.score_path(run, lang, split) for run in plan.runs.values()
                for lang in plan.targets_of(run) for split in ("dev", "test")}

    before = study()
    runs, paths = set(before.runs), scores(before)
    monkeypatch.setitem(tasks.KINDS, "tagging", dataclasses.replace(tasks.KINDS["tagging"], score_version=2))
    after = study()
    assert set(after.runs) == runs
    assert {key[0] for key, path in scores(after).items() if paths[key] != path} == {"pos"}


@pytest.mark.parametrize("code,labels_version", [("zh-Hans", 2), ("deu", 3), ("iw", 3), ("zu", 4), ("nb", 5),
                                                 ("yue", 1), ("tl", 1)])
def test_a_code_read_another_way_moves_its_language_id_scores_only(code, labels_version):
    """Language ID reads zh-Hans as zh (2), deu as de or iw as he through the standard (3), zu (no label) as NaN
    (4) and nb as its macrolanguage no (5), since each scored 0 or NaN: only the test scores of such codes move; a
    code fastText names as written (de, yue, tl) keeps its paths."""
    def with_code(config):
        config["tasks"]["title_generation"].update(
            languages=["en", "de", code], dataset={"loader": "jsonl", "path": "d/{lang}/{split}.jsonl"})
        config["experiments"][0].update(sources=[["en"]], targets=["en", "de", code], xlrs_targets=["de"])

    plan = study(with_code)
    title = next(run for run in plan.runs.values() if run.task == "title_generation" and run.sources == ("en",))
    assert plan.score_spec(title, code, "test").get("lid_labels", 1) == labels_version
    assert "lid_labels" not in plan.score_spec(title, "de", "test")
    assert "lid_labels" not in plan.score_spec(title, code, "dev")
