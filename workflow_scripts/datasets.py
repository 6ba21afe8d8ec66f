"""Dataset loaders: each turns one declaration from config.yaml into normalised records.

Nothing downstream knows where records came from: every loader returns the fields of its task kind
(workflow_scripts/tasks.py), in a deterministic order.
"""
from __future__ import annotations

from pathlib import Path

from workflow_scripts.files import DataError, read_jsonl

SPLITS = ("train", "dev", "test")


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


LOADERS = {"demo": load_demo, "jsonl": load_jsonl}


def load(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """Records of one language and split, and notes on what was dropped or changed (for meta.json).

    A loader returns either a list of records or (records, notes).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    loaded = LOADERS[dataset["loader"]](dataset, lang, split)
    return loaded if isinstance(loaded, tuple) else (loaded, {})
