"""Dataset loaders: each turns one declaration from config.yaml into normalised records.

Nothing downstream knows where records came from: every loader returns the fields of its task kind
(workflow_scripts/tasks.py), in a deterministic order.

Loaders (`dataset.loader`), with the declaration keys each reads (schemas/config.schema.yaml):
  demo         generated corpus (name, sizes, seed)
  jsonl        one JSONL file per language and split, already in our record schema (path template, splits,
               sizes)
  xtreme       google/xtreme udpos | pawsx | tydiqa from the hub or a local copy (name, path, hub_id,
               revision, config, splits, sizes)
  wiki_lingua  GEM/wiki_lingua parquet export, monolingual rows only (path, hub_id, revision, config,
               splits, sizes)
  mtg          MTG story generation (SG) / title generation (TG) from an unpacked local archive
               (name, path, columns, splits, sizes)
  files        any local JSONL/JSON/TSV/CSV/parquet per language and split (path template, columns,
               splits, sizes)

One module per source: local.py (demo, jsonl, files, and read_table_file), xtreme.py, wiki_lingua.py and
mtg.py; hub.py reads hub repositories or local copies of them as parquet (xtreme, wiki_lingua); common.py
holds the helpers several loaders share. This module is the public API: SPLITS, LOADERS, load,
read_table_file, directory_files, repeated_ids and upstream_names.

Heavy libraries (`datasets`, pyarrow) are imported inside the functions: the Snakefile imports this
package's neighbours when it builds the DAG. Inside the package `import datasets` is the Hugging Face
library (no module here is named `datasets`).
"""
from __future__ import annotations

from workflow_scripts.errors import UserError
from workflow_scripts.files import DataError
from workflow_scripts.loaders.local import load_demo, load_files, load_jsonl, read_table_file
from workflow_scripts.loaders.common import repeated_ids, upstream_names
from workflow_scripts.loaders.mtg import load_mtg, local_mtg_files
from workflow_scripts.loaders.wiki_lingua import load_wiki_lingua, local_wiki_lingua_files
from workflow_scripts.loaders.xtreme import load_xtreme, local_xtreme_files
from workflow_scripts.tasks import SPLITS

__all__ = ["SPLITS", "LOADERS", "NEEDS_PATH", "MAPS_COLUMNS", "PATH_IS_TEMPLATE", "DIRECTORY_FILES", "load",
           "directory_files", "read_table_file", "repeated_ids", "upstream_names"]


LOADERS = {"demo": load_demo, "jsonl": load_jsonl, "xtreme": load_xtreme, "wiki_lingua": load_wiki_lingua,
           "mtg": load_mtg, "files": load_files}


# What each loader does with a declaration's keys, for the config checks and error messages.
NEEDS_PATH = ("file", "files", "jsonl", "mtg")  # read local files only
MAPS_COLUMNS = ("files", "mtg")                  # read dataset.columns (their column names as our fields)
PATH_IS_TEMPLATE = ("files", "jsonl")            # a path with {lang} and {split}; mtg's may be one or a directory

# Loaders whose dataset.path may be a directory of many languages, and the files in it one language and split read.
DIRECTORY_FILES = {"xtreme": local_xtreme_files, "wiki_lingua": local_wiki_lingua_files, "mtg": local_mtg_files}


def directory_files(dataset: dict, lang: str, split: str) -> list:
    """The files under a dataset directory (dataset.path) that one language and split read, for the digests:
    a language's data moves to a new path when its own files change, and no other language's does."""
    return DIRECTORY_FILES[dataset["loader"]](dataset, lang, split)


# Loaders of a user's own files, whose other columns may hold anything: given the fields a task reads (`fields` of
# load), they read only those columns and drop a record only for an empty one of them.
READS_FIELDS = ("files", "jsonl")


def load(dataset: dict, lang: str, split: str, fields: tuple[str, ...] | None = None) -> tuple[list[dict], dict]:
    """Records of one language and split, and notes on what was dropped or changed (for meta.json).

    A loader returns either a list of records or (records, notes).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if dataset.get("loader") not in LOADERS:
        raise DataError(f"dataset.loader {dataset.get('loader')!r} cannot load task data; use one of "
                        f"{', '.join(LOADERS)}")
    extra = {"fields": fields} if fields and dataset["loader"] in READS_FIELDS else {}
    loaded = LOADERS[dataset["loader"]](dataset, lang, split, **extra)
    return loaded if isinstance(loaded, tuple) else (loaded, {})

