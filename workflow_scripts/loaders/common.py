"""Helpers shared by several loaders: split specs, labels for messages, notes, feature names, JSON records."""
from __future__ import annotations

import json
import re
from pathlib import Path

from workflow_scripts.files import DataError, read_jsonl

_SPLIT_SPEC = re.compile(r"^([A-Za-z0-9_.-]+?)(?:\[(-?\d*):(-?\d*)\])?$")
# The upstream names a loader tries for our split where dataset.splits names none: MTG archives differ.
SPLIT_ALIASES = {"mtg": {"train": ("train",), "dev": ("dev", "valid", "validation", "val"), "test": ("test",)}}


# The hub dataset a loader reads where dataset.hub_id names none.
DEFAULT_HUB_IDS = {"xtreme": "google/xtreme", "wiki_lingua": "GEM/wiki_lingua"}


def describe(dataset: dict, lang: str, split: str) -> str:
    default = DEFAULT_HUB_IDS.get(dataset.get("loader"))
    label = dataset.get("name") or dataset.get("hub_id") or default or dataset.get("path") or "?"
    return f"{dataset['loader']} dataset {label!r}, language {lang!r}, split {split!r}"


def upstream_names(dataset: dict, split: str) -> tuple[str, ...]:
    """The names that {split} in a local path template may take for our split: the one `dataset.splits` names
    (its slice dropped), else the loader's aliases (mtg), else our split's name."""
    if (dataset.get("splits") or {}).get(split):
        return (upstream_split(dataset, split, split, describe(dataset, "{lang}", split))[0],)
    return SPLIT_ALIASES.get(dataset.get("loader"), {}).get(split, (split,))


def upstream_split(dataset: dict, split: str, default: str, where: str) -> tuple[str, slice | None, str]:
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


def empty_text(record: dict, fields=None) -> bool:
    """Whether a text field (of `fields`, where given: those the task reads) is an empty cell (a summary not written
    yet): nothing to learn or score, so the local loaders drop such a record and count it, as the hub loaders do."""
    from workflow_scripts.tasks import TEXT_FIELDS

    return any(isinstance(value, str) and not value.strip() for field, value in record.items()
               if field in TEXT_FIELDS and (fields is None or field in fields))


def ns_placeholder(record: dict) -> bool:
    """Whether a paraphrase pair is one of the "NS" rows PAWS-X's translated dev/test put where a pair was not
    translated: it has no sentence to learn or score, so loaders drop it (counted as ns_placeholders)."""
    return any(isinstance(record.get(field), str) and record[field].strip() == "NS"
               for field in ("sentence1", "sentence2"))


def class_names(feature) -> list[str] | None:
    """ClassLabel names of a feature: a `datasets` object or its JSON form, possibly inside a List/Sequence."""
    if feature is None:
        return None
    if isinstance(feature, dict):
        if feature.get("_type") == "ClassLabel":
            return list(feature.get("names") or []) or None
        return class_names(feature.get("feature"))
    if type(feature).__name__ == "ClassLabel":
        return list(feature.names)
    return class_names(getattr(feature, "feature", None))


def parquet_features(schema) -> dict:
    """Feature descriptions `datasets` stores in a parquet file's schema metadata ({} when absent)."""
    try:
        return json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    except (TypeError, KeyError, ValueError):
        return {}


def finish(marked: list[tuple[dict, str | None]], part: slice | None, dataset: dict, split: str, where: str,
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


def json_records(path: Path, lang: str, where: str) -> list[dict]:
    """Objects of a JSON-lines file, or of a JSON file holding a list (or {lang: list} / {"data": list})."""
    try:
        text = path.read_text(encoding="utf-8-sig")
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


def repeated_ids(records: list[dict]) -> list[str]:
    """The ids more than one record holds, in the order they first repeat."""
    seen: set = set()
    return list(dict.fromkeys(str(r["id"]) for r in records if r["id"] in seen or seen.add(r["id"])))
