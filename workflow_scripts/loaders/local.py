"""Local data: the demo corpus, JSONL in our record schema, and any JSONL/JSON/TSV/CSV/parquet file."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from workflow_scripts.files import DataError, read_jsonl
from workflow_scripts.tasks import NUMBER_FIELDS, WORD_FIELDS
from workflow_scripts.loaders.common import (class_names, describe, empty_text, finish, json_records,
                                             ns_placeholder, parquet_features, upstream_split)


def load_demo(dataset: dict, lang: str, split: str) -> list[dict]:
    from workflow_scripts import demo_corpus

    if lang not in demo_corpus.LANGUAGES:
        raise DataError(f"demo dataset {dataset['name']!r} has no language {lang!r}; "
                        f"it has {', '.join(demo_corpus.LANGUAGES)}")
    sizes = dataset.get("sizes", {})
    if split not in sizes:
        raise DataError(f"demo dataset {dataset['name']!r}: no size for split {split!r} (dataset.sizes.{split})")
    try:
        return demo_corpus.generate(dataset["name"], lang, split, sizes[split], seed=dataset.get("seed", 0))
    except ValueError as err:  # a size beyond what the demo corpus holds
        raise DataError(f"demo dataset {dataset['name']!r}, {lang} {split}: dataset.sizes.{split}: {err}") from err


def load_jsonl(dataset: dict, lang: str, split: str, fields=None) -> tuple[list[dict], dict]:
    """`path` is a template such as data/pos/{lang}/{split}.jsonl; `splits` may name (and slice) another file.
    A record with an empty text field (of `fields`, the task's, where given) is dropped and counted (dropped_empty)."""
    if "path" not in dataset:
        raise DataError("jsonl dataset needs `path`, e.g. data/{lang}/{split}.jsonl")
    where = describe(dataset, lang, split)
    up_split, part, spec = upstream_split(dataset, split, split, where)
    path = Path(dataset["path"].format(lang=lang, split=up_split))
    if not path.is_file():
        raise DataError(missing_file(where, path, split, up_split))
    marked = [(record, "empty" if empty_text(record, fields) else None) for record in read_jsonl(path)]
    return finish(marked, part, dataset, split, where, {"upstream_split": spec}, "")


def missing_file(where: str, path: Path, split: str | None = None, upstream: str | None = None) -> str:
    """What to set where a file is not there: `split` (ours) and `upstream` (the name dataset.splits gave it, which
    filled the template's {split}) for a dataset's template; neither for one table (xlrs.parallel, loader file)."""
    if split is None:
        return f"{where}.path names {path}, which does not exist"
    renamed = (f"; a file of another name is named with dataset.splits (e.g. {{{split}: validation}})"
               if split != "train" and upstream in (None, split) else "")
    return (f"{where}: {path} does not exist; set dataset.path to a template such as data/{{lang}}/{{split}}.jsonl "
            f"that names an existing file per language and split{renamed}")


def read_table_file(path: Path, where: str, split: str | None = None,
                    upstream: str | None = None) -> tuple[list[dict], dict]:
    """Rows of a JSONL/JSON/TSV/CSV/parquet file (format by suffix), and parquet feature metadata. `split` and
    `upstream`: as missing_file reads them."""
    if not path.is_file():
        raise DataError(missing_file(where, path, split, upstream))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return json_records(path, "", where), {}
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{where}: cannot read {path}: {err}") from err
        return table.to_pylist(), parquet_features(table.schema)
    if suffix in (".tsv", ".csv"):
        try:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                if suffix == ".tsv":
                    reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
                    hint = "a tab inside a cell? TSV cells are not quoted: remove the tab, or save as .csv or .jsonl"
                else:
                    reader = csv.DictReader(handle)
                    hint = "a comma inside a cell? quote it"
                rows = []
                for row in reader:
                    # DictReader puts the fields past the header under the key None, where no column reads them:
                    # the row's text would be cut silently (an empty one, a line ending in a delimiter, loses nothing)
                    if any((extra or "").strip() for extra in row.pop(None, [])):
                        raise DataError(f"{where}: {path}: line {reader.line_num} has more fields than the header "
                                        f"({hint})")
                    rows.append(row)
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
    if field in WORD_FIELDS and isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else value.split()
    elif field in NUMBER_FIELDS and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)
    elif field == "id" and value is not None:
        value = str(value)
    return value


def load_files(dataset: dict, lang: str, split: str, fields=None) -> tuple[list[dict], dict]:
    """Local files, one per language and split; `columns` maps our field names to the file's columns.

    Output records hold the record fields the file provides of `fields` (the task's; else of any task kind,
    tasks.KINDS) and the id; other columns are left out. Without an id column the id is the split and the row number.
    """
    from workflow_scripts.tasks import KINDS

    where = describe(dataset, lang, split)
    if not dataset.get("path"):
        raise DataError(f"{where}: the files loader needs dataset.path, a template such as "
                        f"data/{{lang}}/{{split}}.tsv")
    up_split, part, spec = upstream_split(dataset, split, split, where)
    path = Path(dataset["path"].format(lang=lang, split=up_split))
    rows, features = read_table_file(path, where, split, up_split)
    known = {"id", *fields} if fields else {field for kind in KINDS.values() for field in kind.fields}
    columns = {ours: theirs for ours, theirs in (dataset.get("columns") or {}).items() if ours in known}
    present = list(rows[0]) if rows else []
    missing = [f"{theirs!r} (for {ours})" for ours, theirs in columns.items() if theirs not in present]
    if missing and rows:  # an empty file: the split is empty, whatever its header says
        raise DataError(f"{where}: {path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(present) or 'no rows'}. Fix dataset.columns (our field: their column)")
    mapping = {ours: theirs for ours, theirs in columns.items()}
    for column in present:
        if column in known and column not in mapping and column not in mapping.values():
            mapping[column] = column
    names = {ours: class_names(features.get(theirs)) for ours, theirs in mapping.items()}
    notes: dict = {"upstream_split": spec, "file": path.name}
    marked = []
    for index, row in enumerate(rows):
        try:
            record = {ours: _coerce(ours, row.get(theirs), names[ours]) for ours, theirs in mapping.items()}
        except json.JSONDecodeError as err:  # a word-list cell that starts like JSON and is not
            raise DataError(f"{where}: {path}: row {index + 1}: a list of words that is not valid JSON: {err}") from err
        ident = record.pop("id", None)
        if not ident:
            # row numbers pair the languages of parallel files only where every file has the same rows:
            # xlrs.task_parallel_rows checks that when this note is present
            ident, notes["ids_from_rows_of"] = f"{split}-{index:06d}", str(path)
        record = {"id": ident, **record}
        # a local copy of PAWS-X keeps its "NS" rows: dropped as the xtreme loader drops them
        marked.append((record, "ns_placeholders" if ns_placeholder(record) else "empty" if empty_text(record)
                       else None))
    return finish(marked, part, dataset, split, where, notes, "")
