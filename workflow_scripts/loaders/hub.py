"""Hugging Face hub repositories (or local copies laid out like them) read as parquet tables.

Shared by the xtreme and wiki_lingua loaders.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from workflow_scripts.files import DataError
from workflow_scripts.loaders.common import parquet_features

# Our split -> the split most hub repositories call it.
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

# Where a split's parquet files lie inside a config directory, in the order they are tried.
PARQUET_LAYOUTS = (
    "{config}/{split}-*.parquet",          # hub data files (google/xtreme: udpos.English/train-00000-of-00001.parquet)
    "{config}/{split}/*.parquet",          # the hub's parquet export, refs/convert/parquet (en/train/0000.parquet)
    "{config}/*-{split}.parquet",          # older parquet export (en/wiki_lingua-train.parquet)
    "{config}/*-{split}-*-of-*.parquet",   # older parquet export, sharded
)


def _hub_help(hub_id: str, config: str | None, split: str, parquet_export: bool = False) -> str:
    config = config or "<config>"
    if parquet_export:  # datasets cannot reload a load by file pattern from its cache offline
        return (f"set dataset.path to a local copy of the hub's parquet conversion (files such as "
                f"{config}/{split}/0000.parquet): hf download {hub_id} --repo-type dataset "
                f"--revision refs/convert/parquet --include '*.parquet' --local-dir <dir>")
    return (f"set HF_HOME to a cache that holds {hub_id} (load it once on a machine with network access), "
            f"or set dataset.path to a local copy of the hub repository (files such as {config}/{split}-*.parquet)")


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


def local_parquet_files(root: Path, config: str, up_split: str) -> tuple[list[Path], list[str]]:
    """One config's split in a local copy of a hub repository: the files of the first layout that has any, and
    the layouts tried."""
    tried = [pattern.format(config=config, split=up_split) for pattern in PARQUET_LAYOUTS]
    for pattern in tried:
        files = sorted(root.glob(pattern))
        if files:
            return files, tried
    return [], tried


def _read_local_parquet(root: Path, config: str, up_split: str, where: str):
    """The split's table and features from a local copy laid out like the hub repository."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not root.is_dir():
        raise DataError(f"{where}: dataset.path {str(root)!r} is not a directory; set dataset.path to a local "
                        f"copy of the hub repository (holding {config}/{up_split}-*.parquet), or remove it to "
                        f"load from the hub cache in HF_HOME")
    files, tried = local_parquet_files(root, config, up_split)
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
    return table, parquet_features(tables[0].schema), ", ".join(str(f) for f in files)


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


def fetch(dataset: dict, hub_id: str, config: str, up_split: str, where: str, parquet_export: bool = False):
    if dataset.get("path"):
        return _read_local_parquet(Path(dataset["path"]), config, up_split, where)
    return _load_hub(dataset, hub_id, config, up_split, where, parquet_export=parquet_export)


def require_columns(present, required, where: str, source: str) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise DataError(f"{where}: {source} lacks column(s) {', '.join(missing)} (it has "
                        f"{', '.join(present) or 'none'}); point dataset.path/hub_id at data in the upstream schema")
