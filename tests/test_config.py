"""The config is validated before any job: each error names the key and the value."""
import copy

import pytest

from conftest import demo_config
from workflow_scripts.config import validate
from workflow_scripts.plan import ConfigError


def check(mutate, match):
    config = copy.deepcopy(demo_config())
    mutate(config)
    with pytest.raises(ConfigError, match=match):
        validate(config, "config.yaml")


def test_demo_config_is_valid_and_gets_defaults():
    config = validate(copy.deepcopy(demo_config()))
    assert config["train"]["weight_decay"] == 0.0
    assert config["xlrs"]["max_length"] == 256


def test_a_whole_number_written_as_a_float_is_an_integer():
    config = copy.deepcopy(demo_config())
    config["train"].update(n_train=8.0, seeds=[1.0, 2], epochs=3.0, weight_decay=0)
    config["experiments"][0]["train"] = {"max_grad_norm": 2}
    config["decode"]["max_new_tokens"] = 16.0  # an integer or null
    config = validate(config)
    assert type(config["decode"]["max_new_tokens"]) is int
    assert (config["train"]["n_train"], config["train"]["seeds"]) == (8, [1, 2])
    assert all(type(value) is int for value in [config["train"]["n_train"], *config["train"]["seeds"]])
    # a number takes its default's type (epochs 10, weight_decay 0.0), so the digests of both spellings agree
    assert type(config["train"]["epochs"]) is int and type(config["train"]["weight_decay"]) is float
    assert type(config["experiments"][0]["train"]["max_grad_norm"]) is float
    check(lambda c: c["train"].update(n_train=8.5), r"train.n_train: 8.5 is not of type 'integer'")


def test_unknown_key_is_named():
    check(lambda c: c["train"].update(learning_rat=1e-4), r"config.yaml: train: .*'learning_rat' was unexpected")


def test_bad_value_is_named():
    check(lambda c: c["train"].update(learning_rate=-1), r"train.learning_rate: -1 is less than or equal")


def test_language_a_task_lacks():
    check(lambda c: c["experiments"][0].update(targets=["en", "ko"]),
          r"experiments\[0\].targets: language 'ko' is not among tasks.title_generation.languages")


def test_combination_naming_unknown_language():
    check(lambda c: c["experiments"][1]["sources"].append(["en", "xx"]),
          r"experiments\[1\].sources\[1\]: language 'xx'")


def test_same_language_twice_in_a_combination():
    check(lambda c: c["experiments"][1]["sources"].append(["de", "de"]), r"sources\[1\]: a language appears twice")


def test_unknown_task():
    check(lambda c: c["experiments"][0].update(task="summarisation"),
          r"experiments\[0\].task: unknown task 'summarisation'")


def test_report_languages_must_be_languages_of_a_task():
    check(lambda c: c.update(report={"targets": ["de", "ko"]}), r"report.targets: language 'ko' is not a language")
    check(lambda c: c.update(report={"source": "ko"}), r"report.source: language 'ko'")


def test_report_defaults_are_the_papers_and_need_no_such_languages():
    config = copy.deepcopy(demo_config())
    for task in config["tasks"].values():
        task["languages"] = [lang for lang in task["languages"] if lang != "zh"]
    config["experiments"] = [{**e, "sources": [c for c in e["sources"] if "zh" not in c],
                              "targets": [t for t in e["targets"] if t != "zh"]} for e in config["experiments"]]
    assert validate(config)["report"] == {"source": "en", "targets": ["de", "es", "fr", "zh"]}


@pytest.mark.parametrize("code", ["e n", "en;rm", "en'", "EN"])
def test_language_codes_that_could_reach_a_shell_are_refused(code):
    check(lambda c: c["tasks"]["pos"]["languages"].append(code), r"tasks.pos.languages\[5\]: .* does not match")


def test_local_loaders_need_a_path_and_file_is_for_xlrs_only():
    check(lambda c: c["xlrs"].update(parallel={"loader": "file"}), r"xlrs.parallel.path: missing; the file loader")
    check(lambda c: c["tasks"]["pos"].update(dataset={"loader": "files"}), r"tasks.pos.dataset.path: missing")
    check(lambda c: c["tasks"]["pos"].update(dataset={"loader": "mtg", "name": "TG"}),
          r"tasks.pos.dataset.path: missing; the mtg loader reads local files")
    check(lambda c: c["tasks"]["pos"].update(dataset={"loader": "file", "path": "x.tsv"}),
          r"tasks.pos.dataset.loader: 'file' reads xlrs.parallel's table")


@pytest.mark.parametrize("loader, path, named", [
    ("jsonl", "d/{lang}/dev.jsonl", r"lacks \{split\}, so train and dev and test would all read the same rows"),
    ("files", "d/{split}.tsv", r"lacks \{lang\}, so en, de, fr, es, zh would all read the same file"),
    ("files", "d/{Lang}/{split}.tsv", r"has \{Lang\}; a file template names \{lang\} and \{split\} only"),
    ("mtg", "d/{lang}.jsonl", r"lacks \{split\}"),
    ("jsonl", "d/{lang/{split}.jsonl", r"is not a file template"),
])
def test_a_file_template_must_name_a_file_per_language_and_split(loader, path, named):
    check(lambda c: c["tasks"]["pos"].update(dataset={"loader": loader, "path": path}),
          rf"tasks.pos.dataset.path: .*{named}")


def test_an_unknown_task_kind_is_named_with_the_known_ones():
    check(lambda c: c["tasks"]["pos"].update(kind="nli"),
          r"tasks.pos.kind: 'nli' is not a task kind \(workflow_scripts/tasks.py KINDS: generation, tagging, ")


def test_every_kind_has_what_each_stage_asks_of_it():
    """Cast, check, score (or a text reference for SP-ROUGE) and sentinels: all in tasks.KINDS, nothing elsewhere."""
    from workflow_scripts.tasks import KINDS

    for name, kind in KINDS.items():
        assert kind.name == name and callable(kind.cast) and callable(kind.check) and kind.sentinels >= 1
        assert (kind.score is None) == bool(kind.reference) and (kind.reference in ("", *kind.fields)), name


def test_columns_name_fields_of_the_tasks_kind():
    files = {"loader": "files", "path": "d/{lang}/{split}.tsv"}
    check(lambda c: c["tasks"]["pos"].update(dataset={**files, "columns": {"tag": "upos"}}),
          r"tasks.pos.dataset.columns: 'tag' is not a field of the tagging kind \(id, tokens, tags\)")
    check(lambda c: c["tasks"]["pos"].update(dataset={**files, "columns": {"summary": "s"}}),
          r"'summary' is not a field of the tagging kind")


def test_columns_are_refused_where_the_loader_would_ignore_them():
    check(lambda c: c["tasks"]["pos"].update(dataset={"loader": "jsonl", "path": "d/{lang}/{split}.jsonl",
                                                      "columns": {"tags": "upos"}}),
          r"tasks.pos.dataset.columns: the jsonl loader does not read it .*use loader 'files'")


def test_one_file_for_every_split_is_fine_when_each_split_takes_a_slice():
    config = copy.deepcopy(demo_config())
    splits = {"train": "all[:800]", "dev": "all[800:900]", "test": "all[900:]"}
    config["tasks"]["pos"].update(dataset={"loader": "files", "path": "d/{lang}.tsv", "splits": splits})
    validate(config)
    config["tasks"]["pos"].update(dataset={"loader": "mtg", "name": "TG", "path": "data/MTG"})  # a directory
    validate(config)


def test_a_model_path_that_is_neither_a_directory_nor_a_hub_id_is_named(tmp_path):
    def model_at(path):
        return lambda c: c.update(model={"name": "mine", "path": str(path)})

    check(model_at(tmp_path / "nowhere"), r"model.path: no directory '.*nowhere' \(and it is no hub id")
    check(model_at("./models/mt5"), r"model.path: no directory './models/mt5'")
    check(lambda c: c["model"].update(path="google/mt5-base"), r"model.build and model.path: choose one")
    (tmp_path / "mt5").mkdir()
    (tmp_path / "mt5" / "config.json").write_text("{}")
    check(model_at(tmp_path / "mt5"), r"model.path: directory '.*mt5' lacks weights \(model.safetensors or .*\), "
                                      r"tokenizer \(tokenizer.json or .*\); it has config.json")
    check(model_at(tmp_path / "mt5" / "config.json"), r"model.path: '.*config.json' is a file")
    for name in ("pytorch_model.bin", "spiece.model"):
        (tmp_path / "mt5" / name).write_text("")
    config = copy.deepcopy(demo_config())
    model_at(tmp_path / "mt5")(config)
    validate(config)
    config["model"] = {"name": "mt5", "path": "google/mt5-base"}  # a hub id: the jobs load it from the cache
    validate(config)


def test_xlrs_on_the_demo_corpus_needs_its_languages_and_a_lid_model_path_must_exist(tmp_path):
    def jsonl_task_in_japanese(config):
        config["tasks"]["pos"].update(languages=["en", "ja"], dataset={"loader": "jsonl", "path": "d/{lang}/{split}"})
        config["experiments"][2].update(targets=["ja"])

    check(jsonl_task_in_japanese, r"experiments\[2\]: XLRS of en needs parallel sentences in 'ja'")
    config = copy.deepcopy(demo_config())
    jsonl_task_in_japanese(config)
    config["experiments"][2]["xlrs_targets"] = ["de"]  # XLRS leaves ja out: nothing to refuse
    validate(config)
    config["experiments"][2].update(sources=[["ja"]], targets=["ja"], xlrs_targets=[])  # no XLRS job at all
    validate(config)
    check(lambda c: c["score"].update(lid_model=str(tmp_path / "lid.176.bin")),
          r"score.lid_model: '.*lid.176.bin': no such file; give the path")
    (tmp_path / "lid.176.bin").write_bytes(b"")  # a download that failed
    check(lambda c: c["score"].update(lid_model=str(tmp_path / "lid.176.bin")),
          r"score.lid_model: '.*lid.176.bin': not a fastText model \(it starts with b''\)")


def test_xlrs_on_local_parallel_sentences_needs_their_languages(tmp_path, monkeypatch):
    """An MTG directory with en, de, fr, zh and a parallel table with en, de, zh: a target they lack is named before
    any job; xlrs_targets leaves it out. Where the data is not there yet, the XLRS job will say so."""
    monkeypatch.chdir(tmp_path)
    for lang in ("en", "de", "fr", "zh"):
        (tmp_path / "MTG" / "SG" / lang).mkdir(parents=True)
        (tmp_path / "MTG" / "SG" / lang / "test.jsonl").write_text('{"document": "x", "summary": "y"}\n')
    (tmp_path / "pairs.tsv").write_text("en\tde\tzh\nOne.\tEins.\t一。\n")
    for parallel, has in (({"loader": "mtg", "name": "SG", "path": "MTG"}, "'MTG'"),
                          ({"loader": "file", "path": "pairs.tsv"}, "'pairs.tsv'")):
        check(lambda c: c["xlrs"].update(parallel=parallel),
              rf"experiments\[0\]: XLRS of en needs parallel sentences in '(fr|es)', and xlrs.parallel \({has}\) "
              rf"has none; set experiments\[0\].xlrs_targets to languages xlrs.parallel has \(of this "
              rf"experiment's: de, en,( fr,)? zh\)")
        config = copy.deepcopy(demo_config())
        config["xlrs"]["parallel"] = parallel
        for experiment in config["experiments"]:
            experiment["xlrs_targets"] = ["de"]
        validate(config)
    config = copy.deepcopy(demo_config())
    config["xlrs"]["parallel"] = {"loader": "mtg", "name": "SG", "path": "not/unpacked/yet"}
    validate(config)


def test_a_parallel_table_that_is_missing_empty_or_broken_is_named_before_any_job(tmp_path, monkeypatch):
    """Its XLRS jobs would only find out after fine-tuning."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.tsv").write_text("en\tde\tzh\n")
    (tmp_path / "ragged.tsv").write_text("en\tde\tzh\nOne.\tEins.\t一。\tuno\n")
    for name, problem in (("absent.tsv", r"xlrs.parallel.path: no file 'absent.tsv'; give the table"),
                          ("empty.tsv", r"xlrs.parallel: empty.tsv has no rows"),
                          ("ragged.tsv", r"xlrs.parallel: ragged.tsv: line 2 has more fields than the header")):
        check(lambda c: c["xlrs"].update(parallel={"loader": "file", "path": name}), problem)


def test_every_source_of_a_combination_needs_a_training_example():
    check(lambda c: c["train"].update(n_train=1), r"experiments\[0\]: n_train 1 leaves no training example for each "
                                                  r"source of en\+zh; raise train.n_train to at least 2")


def test_micro_batch_must_divide_batch():
    check(lambda c: c["train"].update(micro_batch_size=5), r"train.micro_batch_size: 5 does not divide batch_size 16")
    # an experiment's own batch_size is split by the top-level micro_batch_size unless it sets its own
    def smaller_batch(config, own_micro=None):
        config["train"].update(micro_batch_size=8)
        config["experiments"][0]["train"] = {"batch_size": 4, **({"micro_batch_size": own_micro} if own_micro else {})}

    check(smaller_batch, r"experiments\[0\].train.batch_size: 4 is not a multiple of train.micro_batch_size 8; set "
                         r"experiments\[0\].train.micro_batch_size too")
    check(lambda c: smaller_batch(c, own_micro=3), r"experiments\[0\].train.micro_batch_size: 3 does not divide "
                                                   r"batch_size 4")


def test_an_experiments_train_section_overrides_only_what_it_sets():
    from workflow_scripts.plan import Study

    config = copy.deepcopy(demo_config())
    config["train"].update(lr_schedule="constant", n_train=900)
    config["experiments"][1]["train"] = {"epochs": 2}
    study = Study(validate(config))
    paraphrase = next(run for run in study.runs.values() if run.task == "paraphrase")
    title = next(run for run in study.runs.values() if run.task == "title_generation")
    assert paraphrase.spec["train"] == {**title.spec["train"], "epochs": 2}
    assert paraphrase.spec["train"]["lr_schedule"] == "constant" and paraphrase.spec["train"]["n_train"] == 900


def test_a_config_file_that_cannot_be_read_or_parsed_is_named(tmp_path):
    import subprocess
    import sys

    from workflow_scripts.config import load_config

    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML, line 2: "):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"absent.yaml: cannot read the config file"):
        load_config(tmp_path / "absent.yaml")
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text("train: {learning_rte: 1}\n")
    result = subprocess.run([sys.executable, "-m", "workflow_scripts.estimate", str(misspelt)], capture_output=True,
                            text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "misspelt.yaml: train: Additional properties are not allowed ('learning_rte'" in result.stderr


def test_a_key_given_twice_is_named_with_both_lines(tmp_path):
    """PyYAML, and so Snakemake, keep the second `train:` block, and the schema fills the first one's keys with
    defaults: the workflow refuses the file before any job."""
    import re
    import subprocess
    import sys

    import json

    from conftest import REPO
    from workflow_scripts.config import load_config, read_config_file

    twice = tmp_path / "twice.yaml"
    twice.write_text((REPO / "config.yaml").read_text(encoding="utf-8") + "train:\n  epochs: 2\n", encoding="utf-8")
    first = 1 + next(i for i, line in enumerate(twice.read_text().splitlines()) if line.startswith("train:"))
    last = len(twice.read_text().splitlines()) - 1
    message = rf"line {last}: key 'train' appears a second time \(first on line {first}\)"
    with pytest.raises(ConfigError, match=rf"twice.yaml: {message}"):
        load_config(twice)
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "-n",
                             "--directory", str(tmp_path), "--configfile", str(twice)], capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(rf"invalid configuration: .*twice.yaml: {message}", result.stdout + result.stderr), result.stderr
    # what YAML and JSON allow still reads: a merge key (whose keys a mapping may override), tab-indented JSON
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text("defaults: &fast {epochs: 1, learning_rate: 1.0e-3}\ntrain:\n  <<: *fast\n  epochs: 2\n")
    assert read_config_file(anchors)["train"] == {"epochs": 2, "learning_rate": 1e-3}
    anchors.write_text("base: &base {epochs: 1, learning_rate: 1.0e-3}\nexperiments:\n  - train: &fast {<<: *base, "
                       "epochs: 2}\ntrain:\n  <<: *fast\n  epochs: 3\n")  # a merged mapping built by a merge
    assert read_config_file(anchors)["train"] == {"epochs": 3, "learning_rate": 1e-3}
    tabs = tmp_path / "tabs.json"
    tabs.write_text(json.dumps({"train": {"epochs": 2}}, indent="\t"))
    assert read_config_file(tabs) == {"train": {"epochs": 2}}
    tabs.write_text('{"train": {"epochs": 2},\n\t"train": {}}')
    with pytest.raises(ConfigError, match="tabs.json: key 'train' appears a second time"):
        read_config_file(tabs)


def test_a_kind_whose_template_reads_an_undeclared_field_is_named(monkeypatch):
    """A new kind's cast that reads record['text'] where its fields say `document` fails at the config check, not
    as a KeyError in each cast job."""
    import dataclasses

    from workflow_scripts import tasks

    typo = dataclasses.replace(tasks.KINDS["generation"], cast=lambda r: {"input": r["text"], "target": r["summary"]})
    monkeypatch.setitem(tasks.KINDS, "generation", typo)
    check(lambda c: None, r"tasks.title_generation.kind: the generation kind .* reads field 'text', which is not "
                          r"among its fields \(id, document, summary\)")
