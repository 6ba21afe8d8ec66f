"""Dataset loaders: each turns one declaration from config.yaml into normalised records.

Nothing downstream knows where records came from: every loader returns the fields of its task kind
(workflow_scripts/tasks.py), in a deterministic order.

Loaders (`dataset.loader`), with the declaration keys each reads (schemas/config.schema.yaml):
  demo         generated corpus (name, sizes, seed)
  jsonl        one JSONL file per language and split, already in our record schema (path template)
  xtreme       google/xtreme udpos | pawsx | tydiqa from the hub or a local copy (name, path, hub_id,
               revision, config, splits, sizes)
  wiki_lingua  GEM/wiki_lingua parquet export, monolingual rows only (path, hub_id, revision, config,
               splits, sizes)
  mtg          MTG story generation (SG) / title generation (TG) from an unpacked local archive
               (name, path, columns, splits, sizes)
  files        any local JSONL/JSON/TSV/CSV/parquet per language and split (path template, columns,
               splits, sizes)

Heavy libraries (`datasets`, pyarrow) are imported inside the functions: the Snakefile imports this
module's neighbours when it builds the DAG.
"""
from __future__ import annotations

import csv
import hashlib
import importlib
import json
import re
from pathlib import Path

from workflow_scripts.files import DataError, read_jsonl

SPLITS = ("train", "dev", "test")
# Our split -> the split most hub repositories call it.
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

# The 17 UPOS tags in the order of google/xtreme's `udpos.*` `pos_tags` ClassLabel (its README
# dataset_info: '0': ADJ ... '15': VERB, '16': X; the alphabetical UD v2 list). Used only when a parquet
# file carries integers but no `datasets` feature metadata to name them.
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")

# google/xtreme config names: udpos.<Language> (the 33 XTREME UD languages), PAWS-X.<code>, tydiqa.
XTREME_UDPOS = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}
XTREME_PAWSX = ("de", "en", "es", "fr", "ja", "ko", "zh")
# TyDiQA-GoldP is one multilingual config; an example's language is the prefix of its id ("english-...").
XTREME_TYDIQA = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
                 "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
XTREME_COLUMNS = {"udpos": ("tokens", "pos_tags"), "pawsx": ("sentence1", "sentence2", "label"),
                  "tydiqa": ("id", "context", "question", "answers")}
# Alternative hub repositories (FIELD_NOTES) and their per-language config.
XTREME_ALTERNATIVES = {"google-research-datasets/paws-x": "{lang}",
                       "google-research-datasets/tydiqa": "secondary_task"}

# Where a split's parquet files lie inside a config directory, in the order they are tried.
PARQUET_LAYOUTS = (
    "{config}/{split}-*.parquet",          # hub data files (google/xtreme: udpos.English/train-00000-of-00001.parquet)
    "{config}/{split}/*.parquet",          # the hub's parquet export, refs/convert/parquet (en/train/0000.parquet)
    "{config}/*-{split}.parquet",          # older parquet export (en/wiki_lingua-train.parquet)
    "{config}/*-{split}-*-of-*.parquet",   # older parquet export, sharded
)
_SPLIT_SPEC = re.compile(r"^([A-Za-z0-9_.-]+?)(?:\[(-?\d*):(-?\d*)\])?$")


def load_demo(dataset: dict, lang: str, split: str) -> list[dict]:
    from workflow_scripts import demo_corpus

    if lang not in demo_corpus.LANGUAGES:
        raise DataError(f"demo dataset {dataset['name']!r} has no language {lang!r}; "
                        f"it has {', '.join(demo_corpus.LANGUAGES)}")
    sizes = dataset.get("sizes", {})
    if split not in sizes:
        raise DataError(f"demo dataset {dataset['name']!r}: no size for split {split!r} (dataset.sizes.{split})")
    return demo_corpus.generate(dataset["name"], lang, split, sizes[split], seed=dataset.get("seed", 0))


def load_jsonl(dataset: dict, lang: str, split: str) -> list[dict]:
    """`path` is a template such as data/pos/{lang}/{split}.jsonl."""
    if "path" not in dataset:
        raise DataError("jsonl dataset needs `path`, e.g. data/{lang}/{split}.jsonl")
    path = Path(dataset["path"].format(lang=lang, split=split))
    records = read_jsonl(path)
    if "sizes" in dataset and split in dataset["sizes"]:
        records = records[: dataset["sizes"][split]]
    return records


# ---------------------------------------------------------------------------------------------------
# shared helpers


def _where(dataset: dict, lang: str, split: str) -> str:
    default = {"xtreme": "google/xtreme", "wiki_lingua": "GEM/wiki_lingua"}.get(dataset.get("loader"))
    label = dataset.get("name") or dataset.get("hub_id") or default or dataset.get("path") or "?"
    return f"{dataset['loader']} dataset {label!r}, language {lang!r}, split {split!r}"


def _upstream_split(dataset: dict, split: str, default: str, where: str) -> tuple[str, slice | None, str]:
    """The upstream split our split reads (`dataset.splits`, else `default`), and an optional [a:b] slice."""
    spec = str((dataset.get("splits") or {}).get(split, default))
    match = _SPLIT_SPEC.match(spec)
    if not match:
        raise DataError(f"{where}: dataset.splits.{split} = {spec!r} is not a split name, optionally sliced "
                        f"like 'train[:1000]' or 'train[1000:]'")
    name, start, stop = match.groups()
    if start is None and stop is None:
        return name, None, spec
    return name, slice(int(start) if start else None, int(stop) if stop else None), spec


def _cap(records: list, dataset: dict, split: str, notes: dict) -> list:
    cap = (dataset.get("sizes") or {}).get(split)
    if cap is not None and len(records) > cap:
        notes["capped_from"] = len(records)
        records = records[:cap]
    return records


def _hub_help(hub_id: str, config: str | None, split: str, parquet_export: bool = False) -> str:
    config = config or "<config>"
    where = f"{config}/{split}/0000.parquet" if parquet_export else f"{config}/{split}-*.parquet"
    return (f"set HF_HOME to a cache that holds {hub_id} (load it once on a machine with network access), "
            f"or set dataset.path to a local copy of the hub repository (files such as {where})")


def _hf_datasets():
    try:
        module = importlib.import_module("datasets")
    except ImportError as err:
        raise DataError(f"the Hugging Face `datasets` library is not installed ({err}); install it, or use the "
                        f"`files` loader on local copies") from err
    if not hasattr(module, "load_dataset"):
        raise DataError(f"`import datasets` found {getattr(module, '__file__', module)!r}, not the Hugging Face "
                        f"library; run the workflow scripts with `python -m workflow_scripts.<stage>`")
    return module


def _class_names(feature) -> list[str] | None:
    """ClassLabel names of a feature: a `datasets` object or its JSON form, possibly inside a List/Sequence."""
    if feature is None:
        return None
    if isinstance(feature, dict):
        if feature.get("_type") == "ClassLabel":
            return list(feature.get("names") or []) or None
        return _class_names(feature.get("feature"))
    if type(feature).__name__ == "ClassLabel":
        return list(feature.names)
    return _class_names(getattr(feature, "feature", None))


def _parquet_features(schema) -> dict:
    """Feature descriptions `datasets` stores in a parquet file's schema metadata ({} when absent)."""
    try:
        return json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    except (TypeError, KeyError, ValueError):
        return {}


def _read_local_parquet(root: Path, config: str, up_split: str, where: str):
    """The split's table and features from a local copy laid out like the hub repository."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not root.is_dir():
        raise DataError(f"{where}: dataset.path {str(root)!r} is not a directory; set dataset.path to a local "
                        f"copy of the hub repository (holding {config}/{up_split}-*.parquet), or remove it to "
                        f"load from the hub cache in HF_HOME")
    tried = [pattern.format(config=config, split=up_split) for pattern in PARQUET_LAYOUTS]
    files: list[Path] = []
    for pattern in tried:
        files = sorted(root.glob(pattern))
        if files:
            break
    if not files:
        here = root / config
        present = sorted(str(p.relative_to(root)) for p in here.rglob("*.parquet"))[:12] if here.is_dir() else []
        configs = sorted(p.name for p in root.iterdir() if p.is_dir())[:20]
        found = (f"{config}/ holds {', '.join(present)}" if present
                 else f"no directory {config}/ (directories: {', '.join(configs) or 'none'})")
        raise DataError(f"{where}: no parquet files for split {up_split!r} under {root} (looked for "
                        f"{', '.join(tried)}; {found}). Map the split to one that exists with dataset.splits, "
                        f"or point dataset.path at a complete copy of the hub repository")
    try:
        tables = [pq.read_table(f) for f in files]
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{where}: cannot read {files[0]}: {err}") from err
    return table, _parquet_features(tables[0].schema), ", ".join(str(f) for f in files)


def _load_hub(dataset: dict, hub_id: str, config: str | None, up_split: str, where: str,
              parquet_export: bool = False):
    """The split's table and features from the hub (or its cache in HF_HOME when offline).

    parquet_export: the repository is script-based (`datasets` >= 4 runs no scripts), so read the hub's
    parquet conversion (revision refs/convert/parquet) file by file instead of the repository's configs.
    """
    hfd = _hf_datasets()
    revision = dataset.get("revision") or ("refs/convert/parquet" if parquet_export else None)
    attempts = ([{"data_files": {up_split: pattern.format(config=config, split=up_split)}}
                 for pattern in PARQUET_LAYOUTS] if parquet_export else [{"name": config}])
    errors = []
    for kwargs in attempts:
        try:
            ds = hfd.load_dataset(hub_id, split=up_split, revision=revision, **kwargs)
        except ValueError as err:
            if "Unknown split" in str(err) or "Bad split" in str(err):
                raise DataError(f"{where}: {hub_id} (config {config}) has no split {up_split!r} ({err}); map "
                                f"our split to one that exists with dataset.splits, e.g. splits: "
                                f"{{test: validation}}") from err
            errors.append(f"{type(err).__name__}: {err}")
        except ConnectionError as err:
            raise DataError(f"{where}: cannot reach {hub_id} (config {config}, split {up_split}) on the Hugging "
                            f"Face hub and it is not in the local cache ({err}); "
                            f"{_hub_help(hub_id, config, up_split, parquet_export)}") from err
        except Exception as err:  # noqa: BLE001 - the hub raises many kinds; all mean "not available here"
            errors.append(f"{type(err).__name__}: {err}")
        else:
            features = {key: value for key, value in ds.features.items()}
            return ds.with_format("arrow")[:], features, f"{hub_id} {config} {up_split}"
    raise DataError(f"{where}: could not load {hub_id} (config {config}, split {up_split}, revision "
                    f"{revision or 'main'}): {errors[-1] if errors else 'unknown error'}; check dataset.config "
                    f"and dataset.splits name a config and split that exist, or "
                    f"{_hub_help(hub_id, config, up_split, parquet_export)}")


def _fetch(dataset: dict, hub_id: str, config: str, up_split: str, where: str, parquet_export: bool = False):
    if dataset.get("path"):
        return _read_local_parquet(Path(dataset["path"]), config, up_split, where)
    return _load_hub(dataset, hub_id, config, up_split, where, parquet_export=parquet_export)


def _require_columns(present, required, where: str, source: str) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise DataError(f"{where}: {source} lacks column(s) {', '.join(missing)} (it has "
                        f"{', '.join(present) or 'none'}); point dataset.path/hub_id at data in the upstream schema")


def _finish(marked: list[tuple[dict, str | None]], part: slice | None, dataset: dict, split: str, where: str,
            notes: dict, unlabelled_hint: str) -> tuple[list[dict], dict]:
    """Slice, drop (and count) marked examples, refuse an all-unlabelled split, cap."""
    if part is not None:
        marked = marked[part]
    if marked and all(problem == "unlabelled" for _, problem in marked):
        raise DataError(f"{where}: all {len(marked)} examples of upstream split {notes['upstream_split']!r} are "
                        f"unlabelled ({unlabelled_hint}); read a labelled split instead with dataset.splits "
                        f"(e.g. splits: {{test: validation}}), or set dataset.path to a copy with gold labels")
    counts: dict[str, int] = {}
    records = []
    for record, problem in marked:
        if problem is None:
            records.append(record)
        else:
            counts[problem] = counts.get(problem, 0) + 1
    notes.update({f"dropped_{problem}": n for problem, n in sorted(counts.items())})
    return _cap(records, dataset, split, notes), notes


# ---------------------------------------------------------------------------------------------------
# xtreme: udpos | pawsx | tydiqa


def _xtreme_config(dataset: dict, name: str, hub_id: str, lang: str, where: str) -> str:
    if dataset.get("config"):
        return dataset["config"].format(lang=lang)
    if hub_id in XTREME_ALTERNATIVES:
        return XTREME_ALTERNATIVES[hub_id].format(lang=lang)
    if name == "udpos":
        if lang not in XTREME_UDPOS:
            raise DataError(f"{where}: XTREME UDPOS has no language {lang!r} (it has "
                            f"{', '.join(sorted(XTREME_UDPOS))}); or name the config with dataset.config")
        return f"udpos.{XTREME_UDPOS[lang]}"
    if name == "pawsx":
        if lang not in XTREME_PAWSX:
            raise DataError(f"{where}: PAWS-X has no language {lang!r} (it has {', '.join(XTREME_PAWSX)})")
        return f"PAWS-X.{lang}"
    return "tydiqa"


def _udpos_example(row: dict, names: list[str]) -> tuple[dict, str | None]:
    tags = []
    for tag in row["pos_tags"] or []:
        if isinstance(tag, str):
            tags.append(tag)
        elif tag is None or not 0 <= int(tag) < len(names):
            return {"tokens": list(row["tokens"] or []), "tags": []}, "unlabelled"
        else:
            tags.append(names[int(tag)])
    tokens = list(row["tokens"] or [])
    return {"tokens": tokens, "tags": tags}, "empty" if not tokens else "unlabelled" if not tags else None


def _udpos_key(record: dict) -> tuple:
    # Upstream order is not guaranteed; a content hash is a stable order that does not put all the
    # sentences that start with "A" first (fine-tuning takes the first N examples).
    text = "\x1f".join(record["tokens"]) + "\x1e" + "\x1f".join(record["tags"])
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), record["tokens"], record["tags"]


def _pawsx_example(row: dict, index: int, up_split: str, names: list[str] | None) -> tuple[dict, str | None]:
    label, problem = row["label"], None
    if isinstance(label, int) and names and 0 <= label < len(names):
        label = names[label]  # google-research-datasets/paws-x: ClassLabel names "0", "1"
    label = str(label).strip() if label is not None else ""
    record = {"id": str(row["id"]) if row.get("id") is not None else f"{up_split}-{index:06d}",
              "sentence1": row["sentence1"] or "", "sentence2": row["sentence2"] or "",
              "label": int(label) if label in ("0", "1") else -1}
    if record["sentence1"].strip() == "NS" or record["sentence2"].strip() == "NS":
        problem = "ns_placeholders"  # PAWS-X's translated dev/test mark untranslated pairs with "NS"
    elif record["label"] == -1:
        problem = "unlabelled"
    return record, problem


def _tydiqa_example(row: dict) -> tuple[dict, str | None]:
    answers = row["answers"] or {}
    if isinstance(answers, list):  # a list of {"text", "answer_start"} structs
        texts = [a.get("text") for a in answers]
        starts = [a.get("answer_start") for a in answers]
    else:  # Sequence({"text", "answer_start"}): a struct of lists
        texts, starts = list(answers.get("text") or []), list(answers.get("answer_start") or [])
    record = {"id": str(row["id"]), "context": row["context"] or "", "question": row["question"] or "",
              "answer_text": "", "answer_start": -1}
    if not texts or texts[0] is None or starts[0] is None or int(starts[0]) < 0:
        return record, "unlabelled"
    text, start = texts[0], int(starts[0])
    record.update(answer_text=text, answer_start=start)
    context = record["context"]
    if context[start:start + len(text)] != text:
        found = [i for i in range(len(context)) if context.startswith(text, i)]
        if not found:
            return record, "answer_not_in_context"
        record["answer_start"] = min(found, key=lambda i: (abs(i - start), i))
        return record, "fixed"
    return record, None


def load_xtreme(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """google/xtreme (or a local copy with its layout): udpos -> tagging, pawsx -> paraphrase, tydiqa -> qa."""
    where = _where(dataset, lang, split)
    name = dataset.get("name")
    if name not in XTREME_COLUMNS:
        raise DataError(f"{where}: dataset.name must be one of {', '.join(XTREME_COLUMNS)}, not {name!r}")
    hub_id = dataset.get("hub_id") or "google/xtreme"
    config = _xtreme_config(dataset, name, hub_id, lang, where)
    up_split, part, spec = _upstream_split(dataset, split, HUB_SPLITS[split], where)
    table, features, source = _fetch(dataset, hub_id, config, up_split, where)
    _require_columns(table.column_names, XTREME_COLUMNS[name], where, source)
    notes: dict = {"upstream_split": spec}
    rows = table.select(list(XTREME_COLUMNS[name]) + (["id"] if "id" in table.column_names and name == "pawsx"
                                                      else [])).to_pylist()
    if name == "udpos":
        names = _class_names(features.get("pos_tags")) or list(UPOS)
        marked = [_udpos_example(row, names) for row in rows]
        marked.sort(key=lambda item: _udpos_key(item[0]))
        marked = [({"id": f"{up_split}-{n:06d}", **record}, problem) for n, (record, problem) in enumerate(marked)]
        hint = "XTREME's own UDPOS test files carry no tags"
    elif name == "pawsx":
        names = _class_names(features.get("label"))
        marked = [_pawsx_example(row, i, up_split, names) for i, row in enumerate(rows)]
        hint = "XTREME's own PAWS-X test files carry no labels"
    else:
        if lang not in XTREME_TYDIQA:
            raise DataError(f"{where}: TyDiQA-GoldP has no language {lang!r} (it has "
                            f"{', '.join(sorted(XTREME_TYDIQA))})")
        prefix = f"{XTREME_TYDIQA[lang]}-"
        kept = [row for row in rows if str(row["id"]).startswith(prefix)]
        notes["rows_other_languages"] = len(rows) - len(kept)
        if not kept:
            seen = sorted({str(row["id"]).split("-", 1)[0] for row in rows})[:12]
            raise DataError(f"{where}: no example id in {source} starts with {prefix!r} (prefixes seen: "
                            f"{', '.join(seen) or 'none'})")
        marked = [_tydiqa_example(row) for row in kept]
        fixed = sum(problem == "fixed" for _, problem in marked)
        if fixed:
            notes["answer_start_fixed"] = fixed
        marked = [(record, None if problem == "fixed" else problem) for record, problem in marked]
        hint = "XTREME's own TyDiQA files strip the answers"
    return _finish(marked, part, dataset, split, where, notes, hint)


# ---------------------------------------------------------------------------------------------------
# wiki_lingua


def load_wiki_lingua(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """GEM/wiki_lingua, rows whose source and target language are both `lang`: document=source, summary=target."""
    import pyarrow.compute as pc

    where = _where(dataset, lang, split)
    hub_id = dataset.get("hub_id") or "GEM/wiki_lingua"
    config = (dataset.get("config") or "{lang}").format(lang=lang)
    up_split, part, spec = _upstream_split(dataset, split, HUB_SPLITS[split], where)
    table, _, source = _fetch(dataset, hub_id, config, up_split, where, parquet_export=True)
    columns = ("gem_id", "source", "target", "source_language", "target_language")
    _require_columns(table.column_names, columns, where, source)
    mask = pc.and_(pc.equal(table["source_language"], lang), pc.equal(table["target_language"], lang))
    kept = table.filter(pc.fill_null(mask, False))
    notes: dict = {"upstream_split": spec, "rows_other_languages": table.num_rows - kept.num_rows}
    if kept.num_rows == 0:
        pairs = sorted({f"{r['source_language']}->{r['target_language']}"
                        for r in table.select(["source_language", "target_language"]).slice(0, 10000).to_pylist()})
        raise DataError(f"{where}: no {lang}->{lang} rows in {source} (language pairs there: "
                        f"{', '.join(pairs[:12]) or 'none'}); set dataset.config to the config that holds {lang}")
    marked = []
    for row in kept.select(["gem_id", "source", "target"]).to_pylist():
        record = {"id": str(row["gem_id"]), "document": row["source"] or "", "summary": row["target"] or ""}
        marked.append((record, None if record["document"].strip() and record["summary"].strip() else "empty"))
    return _finish(marked, part, dataset, split, where, notes, "no summaries")


# ---------------------------------------------------------------------------------------------------
# mtg

# Unverified: MTG (Chen et al. 2022) ships as an archive (Google Drive) whose layout is not documented
# publicly. These are the layouts and field names tried, in order; `path` may instead be a file template
# with {lang} and {split}, and `columns` may name the fields.
MTG_TASK_DIRS = {"SG": ("SG", "sg", "story_generation", "story", "story_completion", "Story Generation"),
                 "TG": ("TG", "tg", "title_generation", "title", "Title Generation")}
MTG_SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test",)}
MTG_RECORD_FILES = ("{lang}/{split}.{ext}", "{split}/{lang}.{ext}", "{split}.{lang}.{ext}", "{lang}.{split}.{ext}",
                    "{split}_{lang}.{ext}", "{lang}_{split}.{ext}", "{split}-{lang}.{ext}", "{lang}-{split}.{ext}")
MTG_PAIRED_FILES = ("{lang}/{split}.{side}", "{split}.{lang}.{side}", "{lang}.{split}.{side}", "{split}/{lang}.{side}")
MTG_SIDES = (("src", "tgt"), ("source", "target"))
MTG_DOCUMENT_FIELDS = ("document", "source", "src", "input", "context", "story", "article", "text", "passage",
                       "content")
MTG_SUMMARY_FIELDS = ("summary", "target", "tgt", "output", "ending", "story_ending", "title", "headline")
MTG_ID_FIELDS = ("id", "idx", "uid", "guid", "example_id")


def _json_records(path: Path, lang: str, where: str) -> list[dict]:
    """Objects of a JSON-lines file, or of a JSON file holding a list (or {lang: list} / {"data": list})."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: cannot read {path}: {err}") from err
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # JSON lines
        if isinstance(whole, dict):
            whole = next((whole[k] for k in (lang, "data", "examples") if isinstance(whole.get(k), list)), [whole])
        if isinstance(whole, list):
            if not all(isinstance(item, dict) for item in whole):
                raise DataError(f"{where}: {path} holds a JSON list whose items are not all objects")
            return whole
    return read_jsonl(path)


def _mtg_fields(records: list[dict], dataset: dict, where: str, path: Path) -> tuple[str, str, str | None]:
    columns = dataset.get("columns") or {}
    keys = set(records[0]) if records else set()
    document = columns.get("document") or next((f for f in MTG_DOCUMENT_FIELDS if f in keys), None)
    summary = columns.get("summary") or next((f for f in MTG_SUMMARY_FIELDS if f in keys and f != document), None)
    ident = columns.get("id") or next((f for f in MTG_ID_FIELDS if f in keys), None)
    missing = [f"{ours} field {theirs!r}" for ours, theirs in (("document", document), ("summary", summary))
               if theirs and theirs not in keys]
    if document is None or summary is None or missing:
        raise DataError(f"{where}: {path}: records have fields {', '.join(sorted(keys)) or 'none'}; expected a "
                        f"document field (one of {', '.join(MTG_DOCUMENT_FIELDS)}) and a target field (one of "
                        f"{', '.join(MTG_SUMMARY_FIELDS)})" + (f"; missing {', '.join(missing)}" if missing else "")
                        + "; name them with dataset.columns: {document: <field>, summary: <field>}")
    return document, summary, ident


def _mtg_candidates(dataset: dict, lang: str, split: str, up_split: str) -> tuple[list, list, list]:
    """Files to try: JSON(-lines) records, line-aligned source/target text pairs, one JSON per split."""
    root = Path(dataset["path"])
    bases = [root] + [root / d for d in MTG_TASK_DIRS.get(str(dataset.get("name", "")).upper(), ())]
    names = (up_split,) if (dataset.get("splits") or {}).get(split) else MTG_SPLIT_NAMES[split]
    singles = [base / pattern.format(lang=lang, split=name, ext=ext)
               for base in bases for name in names for ext in ("jsonl", "json") for pattern in MTG_RECORD_FILES]
    pairs = [(base / pattern.format(lang=lang, split=name, side=src), base / pattern.format(lang=lang, split=name,
                                                                                            side=tgt))
             for base in bases for name in names for src, tgt in MTG_SIDES for pattern in MTG_PAIRED_FILES]
    multi = [base / f"{name}.json" for base in bases for name in names]
    return singles, pairs, multi


def _holds_language(path: Path, lang: str) -> bool:
    try:
        whole = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(whole, dict) and isinstance(whole.get(lang), list)


def load_mtg(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """MTG story generation (SG: story context -> ending) or title generation (TG: article -> title).

    The five languages are multi-way parallel: when the files carry no id field, the id is the split and the
    line number, which names the same example in every language.
    """
    where = _where(dataset, lang, split)
    if not dataset.get("path"):
        raise DataError(f"{where}: the MTG benchmark is distributed as an archive, not on the hub; unpack it and "
                        f"set dataset.path to its task directory (or a file template with {{lang}} and {{split}})")
    up_split, part, spec = _upstream_split(dataset, split, split, where)
    notes: dict = {"upstream_split": spec}
    template = dataset["path"]
    if "{lang}" in template or "{split}" in template:
        singles, pairs, multi = [Path(template.format(lang=lang, split=up_split))], [], []
    else:
        if not Path(template).is_dir():
            raise DataError(f"{where}: dataset.path {template!r} does not exist; unpack the MTG archive and point "
                            f"dataset.path at it")
        singles, pairs, multi = _mtg_candidates(dataset, lang, split, up_split)
    single = next((p for p in singles if p.is_file()), None)
    pair = next((p for p in pairs if p[0].is_file() and p[1].is_file()), None)
    if single is None and pair is None:  # one JSON file per split holding {lang: [records]}
        single = next((p for p in multi if p.is_file() and _holds_language(p, lang)), None)
    if single is not None:
        rows = _json_records(single, lang, where)
        if rows and all(f"sentence{i}" in rows[0] for i in range(1, 6)) and not dataset.get("columns"):
            # ROCStories-style rows: the first four sentences are the context, the fifth the ending.
            rows = [{**r, "document": " ".join(str(r[f"sentence{i}"]) for i in range(1, 5)),
                     "summary": str(r["sentence5"])} for r in rows]
        document, summary, ident = _mtg_fields(rows, dataset, where, single)
        notes["file"] = single.name
    elif pair is not None:
        sides = []
        for path in pair:
            try:
                lines = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
                sides.append([line.rstrip("\r") for line in lines])
            except (OSError, UnicodeDecodeError) as err:
                raise DataError(f"{where}: cannot read {path}: {err}") from err
        if len(sides[0]) != len(sides[1]):
            raise DataError(f"{where}: {pair[0]} has {len(sides[0])} lines but {pair[1]} has {len(sides[1])}; "
                            f"source and target files must be line-aligned")
        rows = [{"document": d, "summary": s} for d, s in zip(*sides)]
        document, summary, ident = "document", "summary", None
        notes["file"] = f"{pair[0].name}+{pair[1].name}"
    else:
        root = Path(template if "{" not in template else template.split("{", 1)[0] or ".")
        present = (sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:15]
                   if root.is_dir() else [])
        tried = [str(p) for p in singles[:6]] + [f"{a} + {b}" for a, b in pairs[:2]] + [str(p) for p in multi[:1]]
        raise DataError(f"{where}: no MTG data file for this language and split. Expected JSON lines (or a JSON "
                        f"list, or {{lang: list}}) such as {', '.join(tried)} ... "
                        f"({len(singles) + len(pairs) + len(multi)} layouts tried); found "
                        f"{', '.join(present) or 'no files'}. Set dataset.path to a file template such as "
                        f"/data/MTG/SG/{{lang}}/{{split}}.jsonl (and dataset.splits for other split names)")
    marked = []
    for index, row in enumerate(rows):
        key = row.get(ident) if ident else None
        record = {"id": str(key) if key is not None else f"{split}-{index:06d}",
                  "document": str(row.get(document) or ""), "summary": str(row.get(summary) or "")}
        marked.append((record, None if record["document"].strip() and record["summary"].strip() else "empty"))
    return _finish(marked, part, dataset, split, where, notes, "no targets")


# ---------------------------------------------------------------------------------------------------
# files


def read_table_file(path: Path, where: str) -> tuple[list[dict], dict]:
    """Rows of a JSONL/JSON/TSV/CSV/parquet file (format by suffix), and parquet feature metadata."""
    if not path.is_file():
        raise DataError(f"{where}: {path} does not exist; set dataset.path to a template such as "
                        f"data/{{lang}}/{{split}}.jsonl that names an existing file per language and split")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _json_records(path, "", where), {}
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{where}: cannot read {path}: {err}") from err
        return table.to_pylist(), _parquet_features(table.schema)
    if suffix in (".tsv", ".csv"):
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                if suffix == ".tsv":
                    rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
                else:
                    rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{where}: cannot read {path}: {err}") from err
        return rows, {}
    raise DataError(f"{where}: {path}: unknown format {suffix!r}; use .jsonl, .json, .tsv, .csv or .parquet")


def _coerce(field: str, value, names: list[str] | None):
    """A file's value as our record field wants it (TSV/CSV give strings; parquet may give ClassLabel ints)."""
    if names is not None:
        if isinstance(value, list):
            value = [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value]
        elif isinstance(value, int) and 0 <= value < len(names):
            value = names[value]
    if field in ("tokens", "tags") and isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else value.split()
    elif field in ("label", "answer_start") and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    elif field == "id" and value is not None:
        value = str(value)
    return value


def load_files(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """Local files, one per language and split; `columns` maps our field names to the file's columns.

    Output records hold the record fields of the task kinds (tasks.KINDS) the file provides; other columns
    are left out. Without an id column the id is the split and the row number.
    """
    from workflow_scripts.tasks import KINDS

    where = _where(dataset, lang, split)
    if not dataset.get("path"):
        raise DataError(f"{where}: the files loader needs dataset.path, a template such as "
                        f"data/{{lang}}/{{split}}.tsv")
    up_split, part, spec = _upstream_split(dataset, split, split, where)
    path = Path(dataset["path"].format(lang=lang, split=up_split))
    rows, features = read_table_file(path, where)
    known = {field for kind in KINDS.values() for field in kind.fields}
    columns = dict(dataset.get("columns") or {})
    present = list(rows[0]) if rows else []
    missing = [f"{theirs!r} (for {ours})" for ours, theirs in columns.items() if theirs not in present]
    if missing:
        raise DataError(f"{where}: {path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(present) or 'no rows'}. Fix dataset.columns (our field: their column)")
    mapping = {ours: theirs for ours, theirs in columns.items()}
    for column in present:
        if column in known and column not in mapping and column not in mapping.values():
            mapping[column] = column
    names = {ours: _class_names(features.get(theirs)) for ours, theirs in mapping.items()}
    notes: dict = {"upstream_split": spec, "file": path.name}
    marked = []
    for index, row in enumerate(rows):
        record = {ours: _coerce(ours, row.get(theirs), names[ours]) for ours, theirs in mapping.items()}
        record = {"id": record.pop("id", None) or f"{split}-{index:06d}", **record}
        marked.append((record, None))
    return _finish(marked, part, dataset, split, where, notes, "")


LOADERS = {"demo": load_demo, "jsonl": load_jsonl, "xtreme": load_xtreme, "wiki_lingua": load_wiki_lingua,
           "mtg": load_mtg, "files": load_files}


def load(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """Records of one language and split, and notes on what was dropped or changed (for meta.json).

    A loader returns either a list of records or (records, notes).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if dataset.get("loader") not in LOADERS:
        raise DataError(f"dataset.loader {dataset.get('loader')!r} cannot load task data; use one of "
                        f"{', '.join(LOADERS)}")
    loaded = LOADERS[dataset["loader"]](dataset, lang, split)
    return loaded if isinstance(loaded, tuple) else (loaded, {})
