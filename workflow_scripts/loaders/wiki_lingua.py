"""GEM/wiki_lingua: the parquet export, monolingual rows only."""
from __future__ import annotations

from pathlib import Path

from workflow_scripts.files import DataError
from workflow_scripts.loaders.common import DEFAULT_HUB_IDS, describe, empty_text, finish, upstream_split
from workflow_scripts.loaders.hub import HUB_SPLITS, fetch, local_parquet_files, require_columns


def _config(dataset: dict, lang: str) -> str:
    return (dataset.get("config") or "{lang}").format(lang=lang)


def local_wiki_lingua_files(dataset: dict, lang: str, split: str) -> list[Path]:
    """The files of a local copy (dataset.path) that one language and split read."""
    up_split = upstream_split(dataset, split, HUB_SPLITS[split], describe(dataset, lang, split))[0]
    return local_parquet_files(Path(dataset["path"]), _config(dataset, lang), up_split)[0]


def load_wiki_lingua(dataset: dict, lang: str, split: str) -> tuple[list[dict], dict]:
    """GEM/wiki_lingua, rows whose source and target language are both `lang`: document=source, summary=target."""
    import pyarrow.compute as pc

    where = describe(dataset, lang, split)
    hub_id = dataset.get("hub_id") or DEFAULT_HUB_IDS["wiki_lingua"]
    config = _config(dataset, lang)
    up_split, part, spec = upstream_split(dataset, split, HUB_SPLITS[split], where)
    table, _, source = fetch(dataset, hub_id, config, up_split, where, parquet_export=True)
    columns = ("gem_id", "source", "target", "source_language", "target_language")
    require_columns(table.column_names, columns, where, source)
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
        # gem_id numbers the rows of one language's file: the same id in two languages is not the same article
        record = {"id": f"{lang}-{row['gem_id']}", "document": row["source"] or "", "summary": row["target"] or ""}
        marked.append((record, "empty" if empty_text(record) else None))
    return finish(marked, part, dataset, split, where, notes, "no summaries")
