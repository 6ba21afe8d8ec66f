"""The study plan: every job's spec, digest and output path, derived from a validated config.

A path carries the digest of its spec, and a spec holds the digests of its upstream outputs, so a
change anywhere moves every output that depends on it to a new path and leaves old results in place.
Specs never hold the list of targets or of combinations: adding a language or a combination adds
jobs and changes no existing path. Importable without Snakemake (tests, workflow_scripts.estimate).
"""
from __future__ import annotations

import copy
import functools
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.digest import FileHashes, canonical_json, digest
from workflow_scripts.errors import UserError
from workflow_scripts.metrics import lid_labels_version
from workflow_scripts.tasks import KINDS, PAPER_COS_SIM, SPLITS

# Bump one when the code of its stage changes what it writes, so old outputs are not reused.
VERSIONS = {"prepare": 2, "cast": 2, "model": 1, "finetune": 2, "xlrs": 2, "decode": 2, "score": 1,
            "select": 1, "aggregate": 8}
# A loader whose records changed is versioned alone, so that only its datasets (and what follows) are rebuilt; a
# (loader, dataset name or task kind) entry versions only those of its datasets:
# xtreme 2: UDPOS ids carry their language (UD treebanks are not parallel); wiki_lingua 2: so do WikiLingua's;
# mtg 2: with dataset.name, the task's folder is read, not a file at the archive's root; files 2 (paraphrase):
# PAWS-X's "NS" placeholder pairs are dropped, as xtreme drops them; jsonl 2: a record with an empty text field is
# dropped; xtreme 3 (tydiqa): a record keeps its other annotated answers, which scoring takes the best of;
# files 2 (3 for paraphrase) and jsonl 3: only the fields the task (or XLRS) reads are read from a file's columns and
# checked for an empty text, so an empty cell in another column no longer drops the record.
LOADER_VERSIONS = {"xtreme": 2, ("xtreme", "tydiqa"): 3, "wiki_lingua": 2, "mtg": 2, "files": 2,
                   ("files", "paraphrase"): 3, "jsonl": 3}
PER_SPLIT_KEYS = ("sizes", "splits")  # dataset keys that hold one value per split


class ConfigError(UserError):
    """A config value the workflow cannot run with; the message names the key and the value."""


@dataclass(frozen=True)
class Run:
    """One fine-tuning run: a task, a source-language combination and a seed."""
    id: str
    task: str
    sources: tuple[str, ...]
    seed: int
    digest: str
    spec: dict

    @property
    def combination(self) -> str:
        return "+".join(self.sources)


def xlrs_languages(sources, experiment: dict) -> list[str]:
    """Languages whose XLRS is measured: xlrs_targets (default: targets) and the sources, each against every
    source other than itself."""
    languages = experiment.get("xlrs_targets", experiment["targets"])
    return [lang for lang in dict.fromkeys([*sources, *languages]) if any(source != lang for source in sources)]


def parallel_source(parallel: dict) -> tuple[str, str]:
    """The field and split of a task dataset that xlrs.parallel reads (the paper: MTG story completion's test
    documents)."""
    return parallel.get("field", "document"), parallel.get("split", "test")


def parallel_kind(parallel: dict) -> str | None:
    """The task kind whose records hold xlrs.parallel's field (sentence1: paraphrase), for its loader version."""
    field, _ = parallel_source(parallel)
    return next((name for name, kind in KINDS.items() if field in kind.fields), None)


def loader_version(dataset: dict, kind: str | None = None) -> dict:
    """{"loader_version": N} for a loader whose records changed since it was written (LOADER_VERSIONS), else
    nothing: the specs of every other loader's data keep their digests."""
    loader = dataset["loader"]
    version = (LOADER_VERSIONS.get((loader, dataset.get("name"))) or LOADER_VERSIONS.get((loader, kind))
               or LOADER_VERSIONS.get(loader))
    return {"loader_version": version} if version else {}


def split_view(dataset: dict, split: str) -> dict:
    """A dataset declaration as one split's loader reads it: the other splits' sizes and upstream names left out."""
    view = {key: value for key, value in dataset.items() if key not in PER_SPLIT_KEYS}
    for key in PER_SPLIT_KEYS:
        if split in (dataset.get(key) or {}):
            view[key] = {split: dataset[key][split]}
    return view


def model_family(path: str) -> str | None:
    """The model_type of a local checkpoint (mt5, umt5, t5, mbart...); a hub id is identified by its name."""
    config = Path(path) / "config.json"
    if config.is_file():
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    return None


class Study:
    def __init__(self, config: dict):
        """`config` as workflow_scripts.config.validate returns it: defaults filled in, checked."""
        self.config = config
        self.results = config["results"].rstrip("/")
        self.file_hashes = FileHashes(Path(self.results) / ".file_hashes.json")

    @property
    def compile_cache(self) -> str:
        """Where the GPU jobs share torch.compile's compiled code (cli.COMPILE_CACHE_VARIABLE): absolute, as
        each job resolves it on its own host."""
        return os.path.abspath(f"{self.results}/.torch_compile_cache")

    @functools.cache
    def fingerprint(self, pattern: str) -> str:
        return self.file_hashes.fingerprint(pattern)

    def files_fingerprint(self, dataset: dict, languages: list[str], splits=SPLITS, key: str = "files") -> dict:
        """{key: the fingerprint of the files a local dataset reads for `languages` and `splits`}, or nothing.
        In a directory of many languages (an unpacked MTG archive, a local copy of a hub dataset) only the files
        of these languages and splits count, so that one language's new files move no other language's data."""
        # Every XLRS spec asks again for the same few languages of the parallel set: the answer is kept.
        return self._files_fingerprint(canonical_json(dataset), tuple(languages), tuple(splits), key)

    @functools.cache
    def _files_fingerprint(self, dataset_json: str, languages: tuple[str, ...], splits: tuple[str, ...],
                           key: str) -> dict:
        from workflow_scripts.files import DataError
        from workflow_scripts.loaders import upstream_names

        dataset = json.loads(dataset_json)
        path = dataset.get("path")
        if not path:
            return {}
        if dataset["loader"] == "file" and Path(path).is_file():
            return self._table_columns(path, languages, key)
        if Path(path).is_dir():
            try:
                found = sorted({file for lang in languages for split in splits
                                for file in self._directory_files(dataset_json, lang, split)})
            except DataError:  # a language the loader does not know: its prepare job says so
                return {}
            patterns = [glob.escape(file) for file in found]
        else:
            patterns = sorted({glob.escape(path.replace("{lang}", lang).replace("{split}", name))
                               for lang in languages for split in splits for name in upstream_names(dataset, split)})
        if not any(glob.glob(pattern) for pattern in patterns):  # no data here (yet): planning only
            return {}
        return {key: digest([self.fingerprint(pattern) for pattern in patterns])}

    def _table_columns(self, path: str, languages: tuple[str, ...], key: str) -> dict:
        """{key: the fingerprint of the columns of `languages` in one table with a column per language (the file
        loader)}: the rows pair by their number, so each column's cells in row order are what a job reads of it,
        and another language's column, new or edited, moves nothing of this job."""
        from workflow_scripts.files import DataError
        from workflow_scripts.loaders import read_table_file

        try:
            columns = self.file_hashes.column_hashes(Path(path), lambda file: read_table_file(file, "xlrs.parallel")[0])
        except DataError:  # unreadable: its XLRS jobs say why; meanwhile the whole file stands for it
            return {key: digest([self.fingerprint(glob.escape(path))])}
        return {key: digest({lang: columns.get(lang) for lang in languages})}

    @functools.cache
    def _directory_files(self, dataset_json: str, lang: str, split: str) -> tuple[str, ...]:
        from workflow_scripts.loaders import directory_files

        return tuple(map(str, directory_files(json.loads(dataset_json), lang, split)))

    # --- data -----------------------------------------------------------------------------------
    def kind_name(self, task: str) -> str:
        return self.config["tasks"][task]["kind"]

    @functools.cache
    def data_spec(self, task: str, lang: str, split: str) -> dict:
        """One split of one language: its own size and upstream split only, so that a new test set size or test
        file moves no fine-tuning run."""
        dataset = self.config["tasks"][task]["dataset"]
        return {"stage": "prepare", "version": VERSIONS["prepare"], "task": task, "kind": self.kind_name(task),
                "dataset": split_view(dataset, split), "lang": lang, "split": split,
                **self.files_fingerprint(dataset, [lang], [split]), **loader_version(dataset, self.kind_name(task))}

    def data_path(self, task: str, lang: str, split: str) -> str:
        return f"{self.results}/data/{task}/{lang}/{split}-{digest(self.data_spec(task, lang, split))}.jsonl"

    @functools.cache
    def cast_spec(self, task: str, lang: str, split: str) -> dict:
        """A kind whose template changed has a template_version of its own (tasks.TaskKind), so that only its
        tasks are cast, trained and measured again."""
        template = KINDS[self.kind_name(task)].template_version
        return {"stage": "cast", "version": VERSIONS["cast"], "kind": self.kind_name(task),
                "data": digest(self.data_spec(task, lang, split)),
                **({"template_version": template} if template > 1 else {})}

    def cast_path(self, task: str, lang: str, split: str) -> str:
        return f"{self.results}/cast/{task}/{lang}/{split}-{digest(self.cast_spec(task, lang, split))}.jsonl"

    # --- model ----------------------------------------------------------------------------------
    @property
    def builds_model(self) -> bool:
        return "build" in self.config["model"]

    @functools.cached_property
    def model_spec(self) -> dict:
        model = self.config["model"]
        if self.builds_model:
            from workflow_scripts import demo_corpus

            return {"stage": "model", "version": VERSIONS["model"], "name": model["name"], "build": model["build"],
                    "tokenizer_languages": list(demo_corpus.LANGUAGES), "family": "mt5"}
        path = model.get("path", model["name"])
        # a local directory by its files, a hub id by its revision
        local = Path(path).exists()
        source = {"files": self.fingerprint(glob.escape(path))} if local else {"revision": model["revision"]}
        return {"stage": "model", "name": model["name"], "path": path, **source, "family": model_family(path)}

    @property
    def model_ref(self) -> str:
        """What from_pretrained loads: the built directory, a local path or a hub id."""
        if self.builds_model:
            return f"{self.results}/models/{self.config['model']['name']}-{digest(self.model_spec)}"
        return self.model_spec["path"]

    @property
    def model_revision(self) -> str | None:
        """The hub revision from_pretrained loads; None for a built model or a local directory."""
        return self.model_spec.get("revision")

    # --- fine-tuning ----------------------------------------------------------------------------
    def train_params(self, experiment: dict) -> dict:
        params = {**copy.deepcopy(self.config["train"]), **experiment.get("train", {})}
        params.setdefault("micro_batch_size", params["batch_size"])
        params.pop("seeds")
        if params["weight_decay"]:  # finetune version 2 decayed every parameter; now Seq2SeqTrainer's groups
            params["decay_groups"] = "trainer"
        return params

    @functools.cached_property
    def runs(self) -> dict[str, Run]:
        runs = {}
        for experiment in self.config["experiments"]:
            task = experiment["task"]
            seeds = experiment.get("train", {}).get("seeds", self.config["train"]["seeds"])
            for sources in experiment["sources"]:
                for seed in seeds:
                    spec = {"stage": "finetune", "version": VERSIONS["finetune"], "task": task,
                            "kind": self.kind_name(task), "sources": list(sources), "seed": seed,
                            "train": self.train_params(experiment), "model": digest(self.model_spec),
                            "data": {lang: digest(self.cast_spec(task, lang, "train")) for lang in sources}}
                    run = Run(f"{task}-{'+'.join(sources)}-s{seed}-{digest(spec)}", task, tuple(sources), seed,
                              digest(spec), spec)
                    runs[run.id] = run
        return runs

    def run_dir(self, run: Run) -> str:
        return f"{self.results}/runs/{run.id}"

    def experiment_of(self, run: Run) -> dict:
        for experiment in self.config["experiments"]:
            if experiment["task"] == run.task and list(run.sources) in [list(s) for s in experiment["sources"]]:
                return experiment
        raise KeyError(run.id)

    def targets_of(self, run: Run) -> list[str]:
        return list(self.experiment_of(run)["targets"])

    def xlrs_languages(self, run: Run) -> list[str]:
        return xlrs_languages(run.sources, self.experiment_of(run))

    def eval_languages(self, run: Run) -> list[str]:
        """Targets plus the run's sources: en-dev selection needs the source dev scores."""
        return list(dict.fromkeys([*run.sources, *self.targets_of(run)]))

    # --- measurement ----------------------------------------------------------------------------
    def xlrs_spec(self, run: Run, lang: str) -> dict:
        xlrs = self.config["xlrs"]
        return {"stage": "xlrs", "version": VERSIONS["xlrs"], "run": run.digest, "model": digest(self.model_spec),
                "parallel": xlrs["parallel"], "n_pairs": xlrs["n_pairs"], "seed": xlrs["seed"],
                **self.files_fingerprint(xlrs["parallel"], [*run.sources, lang],
                                         [parallel_source(xlrs["parallel"])[1]], key="parallel_files"),
                "max_length": xlrs["max_length"], "sources": list(run.sources), "target": lang,
                **loader_version(xlrs["parallel"], parallel_kind(xlrs["parallel"]))}

    def xlrs_path(self, run: Run, lang: str) -> str:
        return f"{self.run_dir(run)}/xlrs/{lang}-{digest(self.xlrs_spec(run, lang))}.tsv"

    def decode_spec(self, run: Run, lang: str, split: str) -> dict:
        decode = self.config["decode"]
        spec = {"stage": "decode", "version": VERSIONS["decode"], "run": run.digest, "split": split,
                "data": digest(self.cast_spec(run.task, lang, split)), "lang": lang, "kind": run.spec["kind"],
                "size": decode["dev_size"] if split == "dev" else decode["test_size"],
                "num_beams": decode["num_beams"], "max_new_tokens": self.max_new_tokens(run),
                "max_source_length": run.spec["train"]["max_source_length"]}
        if split == "test":
            spec["select"] = digest(self.select_spec(run, lang))
        return spec

    def decode_inputs(self, run: Run, lang: str, split: str) -> dict:
        """The files a decode job reads, each digested by its spec: the run, the cast split and, for a test set,
        the selection of its checkpoints."""
        inputs = {"run": f"{self.run_dir(run)}/run.json", "data": self.cast_path(run.task, lang, split)}
        return {**inputs, "selection": self.select_path(run, lang)} if split == "test" else inputs

    def max_new_tokens(self, run: Run) -> int:
        """decode.max_new_tokens, by default the run's max_target_length: a tagging run's (its targets are long)
        then decodes as far as it was trained to write."""
        return self.config["decode"]["max_new_tokens"] or run.spec["train"]["max_target_length"]

    def decode_path(self, run: Run, lang: str, split: str) -> str:
        return f"{self.run_dir(run)}/decode/{split}/{lang}-{digest(self.decode_spec(run, lang, split))}.jsonl"

    def score_spec(self, run: Run, lang: str, split: str) -> dict:
        kind = KINDS[run.spec["kind"]]
        spec = {"stage": "score", "version": VERSIONS["score"], "decode": digest(self.decode_spec(run, lang, split)),
                "kind": run.spec["kind"], "lang": lang, "sources": list(run.sources), "model": digest(self.model_spec),
                **({"score_version": kind.score_version} if kind.score_version > 1 else {})}
        if kind.score is not None:  # ROUGE and language ID measure generated text only
            return spec
        spec["rouge_l"] = self.config["score"]["rouge_l"]
        if split != "test":  # dev scores pick checkpoints: another LID model must not re-decode every test set
            return spec
        lid_model = self.config["score"]["lid_model"]
        lid_files = {"lid_files": self.fingerprint(glob.escape(lid_model))} if lid_model else {}
        labels_version = lid_labels_version([lang, *run.sources])
        relabelled = {"lid_labels": labels_version} if labels_version > 1 else {}
        return {**spec, "lid_model": lid_model, **lid_files, **relabelled}

    def score_path(self, run: Run, lang: str, split: str) -> str:
        return f"{self.run_dir(run)}/scores/{split}/{lang}-{digest(self.score_spec(run, lang, split))}.tsv"

    def select_spec(self, run: Run, lang: str) -> dict:
        spec = {"stage": "select", "version": VERSIONS["select"], "metric": self.metric(run),
                "source_dev": {src: digest(self.score_spec(run, src, "dev")) for src in run.sources},
                "target_dev": digest(self.score_spec(run, lang, "dev")),
                "xlrs": digest(self.xlrs_spec(run, lang)) if lang in self.xlrs_languages(run) else None,
                "target": lang, "sources": list(run.sources)}
        cos_sim_end = self.cos_sim_end(run)
        return spec if cos_sim_end == PAPER_COS_SIM else {**spec, "cos_sim": cos_sim_end}

    def select_inputs(self, run: Run, lang: str) -> dict:
        """The files a select job reads, each digested by its spec: the sources' and the target's dev scores and,
        where XLRS is measured in the target, its table (cos-sim)."""
        inputs = {"source_dev": [self.score_path(run, source, "dev") for source in run.sources],
                  "target_dev": self.score_path(run, lang, "dev")}
        return {**inputs, "xlrs": self.xlrs_path(run, lang)} if lang in self.xlrs_languages(run) else inputs

    def select_path(self, run: Run, lang: str) -> str:
        return f"{self.run_dir(run)}/select/{lang}-{digest(self.select_spec(run, lang))}.json"

    def cos_sim_end(self, run: Run) -> str:
        return self.config["tasks"][run.task].get("cos_sim", KINDS[run.spec["kind"]].cos_sim)

    def metric(self, run: Run) -> str:
        metric = KINDS[run.spec["kind"]].metric
        return self.config["score"]["rouge_l"] if metric == "rougeL" else metric

    # --- everything -----------------------------------------------------------------------------
    def prepared_splits(self) -> list[tuple[str, str, str]]:
        """(task, language, split) of every split the study prepares: dev and test of each language a task
        declares, a training split only where the language is a source (a zero-shot target may have none)."""
        sources = {(run.task, lang) for run in self.runs.values() for lang in run.sources}
        return [(task, lang, split) for task, declaration in self.config["tasks"].items()
                for lang in declaration["languages"] for split in SPLITS
                if split != "train" or (task, lang) in sources]

    def run_outputs(self, run: Run) -> list[str]:
        outputs = [f"{self.run_dir(run)}/train_log.tsv"]
        outputs += [self.xlrs_path(run, lang) for lang in self.xlrs_languages(run)]
        for lang in self.eval_languages(run):
            outputs += [self.score_path(run, lang, "dev"), self.score_path(run, lang, "test")]
        return outputs

    @functools.cache
    def manifest(self) -> dict:
        """Every per-run measurement the aggregation reads, and what it needs to know about each."""
        runs = []
        for run in self.runs.values():
            languages = {lang: {"dev": self.score_path(run, lang, "dev"), "test": self.score_path(run, lang, "test"),
                                "select": self.select_path(run, lang)}
                         for lang in self.eval_languages(run)}
            runs.append({"id": run.id, "task": run.task, "kind": run.spec["kind"], "sources": list(run.sources),
                         "seed": run.seed, "metric": self.metric(run), "cos_sim": self.cos_sim_end(run),
                         "targets": self.targets_of(run),
                         "run_dir": self.run_dir(run), "languages": languages,
                         "xlrs": {lang: self.xlrs_path(run, lang) for lang in self.xlrs_languages(run)}})
        cast_test = {task: {lang: self.cast_path(task, lang, "test") for lang in declaration["languages"]}
                     for task, declaration in self.config["tasks"].items()}
        # every declared task's kind: a QA task's test answers are counted (§5.4) whether or not a run trains on it
        kinds = {task: self.kind_name(task) for task in self.config["tasks"]}
        return {"stage": "aggregate", "version": VERSIONS["aggregate"], "runs": runs, "cast_test": cast_test,
                "kinds": kinds, "report": self.config["report"]}

    @property
    def summary_digest(self) -> str:
        return digest(self.manifest())

    @property
    def summary_dir(self) -> str:
        return f"{self.results}/summary-{self.summary_digest}"

    def manifest_inputs(self) -> list[str]:
        manifest = self.manifest()
        paths = [f"{run['run_dir']}/{name}" for run in manifest["runs"] for name in ("run.json", "train_log.tsv")]
        paths += [path for run in manifest["runs"] for files in run["languages"].values() for path in files.values()]
        paths += [path for run in manifest["runs"] for path in run["xlrs"].values()]
        paths += [path for langs in manifest["cast_test"].values() for path in langs.values()]
        return paths

    def final_outputs(self) -> list[str]:
        outputs = [self.cast_path(task, lang, split) for task, lang, split in self.prepared_splits()]
        for run in self.runs.values():
            outputs += self.run_outputs(run)
        return outputs + [f"{self.summary_dir}/tables/README.md", f"{self.summary_dir}/figures"]
