"""Stage 4, XLRS: cross-lingual representation similarity of every checkpoint (paper §4, footnote 2).

XLRS(s, t) = mean over N parallel sentence pairs of the cosine similarity between the mask-aware
mean-pooled encoder states of the sentence in s and of its translation in t. Reported for the last
encoder layer (the paper's) and for every other layer, at step 0 (the model before fine-tuning) and
at every checkpoint, against each source language of the run.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from workflow_scripts import cli
from workflow_scripts.files import DataError, checkpoint_path, read_json

log = logging.getLogger("xlrs")


def load_parallel(declaration: dict, languages: list[str], n_pairs: int, seed: int) -> dict[str, list[str]]:
    """n_pairs aligned sentences per language, sampled with `seed` from rows that have every language.

    Whether a row is drawn depends on its key (its id, or its row number) and the seed only, so every job sees
    the same source sentences, and where a target lacks some rows, the others still are the ones every job sees.
    """
    loader = declaration["loader"]
    if loader == "demo":
        rows = demo_parallel_rows(declaration, languages)
    elif loader == "file":
        rows = file_parallel_rows(declaration, languages)
    else:
        rows = task_parallel_rows(declaration, languages)
    usable = [key for key, row in rows.items() if all((row.get(lang) or "").strip() for lang in languages)]
    if not usable:
        raise DataError(f"xlrs.parallel: no row has a sentence in every one of {', '.join(languages)}")
    if len(usable) < n_pairs:  # the paper's figure is 512: a smaller sample is noisier, which the log should say
        log.warning("xlrs.parallel: %d rows have a sentence in every one of %s, fewer than xlrs.n_pairs %d; "
                    "XLRS is measured on those %d", len(usable), ", ".join(languages), n_pairs, len(usable))
    position = {key: i for i, key in enumerate(rows)}
    chosen = sorted(sorted(usable, key=lambda key: draw_rank(key, seed))[:n_pairs], key=position.get)
    return {lang: [rows[key][lang] for key in chosen] for lang in languages}


def draw_rank(key, seed: int) -> bytes:
    """A row's place in the seed's random order, a function of its key alone."""
    import hashlib

    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def demo_parallel_rows(declaration: dict, languages: list[str]) -> dict[int, dict]:
    """{row number: {lang: sentence}} of the demo corpus's parallel task.

    Not loaders.load_demo: the rows are keyed by their number, which draw_rank reads (load_demo's ids would draw
    another sample), the corpus task is "parallel" whatever the declaration's name, and sizes.test defaults to 512.
    """
    from workflow_scripts import demo_corpus

    size = declaration.get("sizes", {}).get("test", 512)
    missing = [lang for lang in languages if lang not in demo_corpus.LANGUAGES]
    if missing:
        raise DataError(f"xlrs.parallel (demo corpus): no parallel sentences for language {missing[0]!r}")
    try:
        columns = {lang: [r["text"] for r in demo_corpus.generate("parallel", lang, "test", size,
                                                                 seed=declaration.get("seed", 0))]
                   for lang in languages}
    except ValueError as err:  # a size beyond what the corpus holds
        raise DataError(f"xlrs.parallel (demo corpus): {err}; lower xlrs.parallel.sizes.test") from err
    return dict(enumerate(dict(zip(columns, texts)) for texts in zip(*columns.values())))


def file_parallel_rows(declaration: dict, languages: list[str]) -> dict[int, dict]:
    """{row number: row} of one table with a column per language (the 'file' loader)."""
    from workflow_scripts.loaders import read_table_file

    table, _ = read_table_file(Path(declaration["path"]), "xlrs.parallel")
    if not table:
        raise DataError(f"xlrs.parallel {declaration['path']}: empty, no parallel sentences")
    for lang in languages:
        if lang not in table[0]:
            raise DataError(f"xlrs.parallel {declaration['path']}: no column for language {lang!r}")
    return dict(enumerate(table))


def task_parallel_rows(declaration: dict, languages: list[str]) -> dict[str, dict]:
    """{id: {lang: sentence}} of a multi-way parallel task dataset (the paper: MTG story-completion test set), for
    the ids every language has."""
    from workflow_scripts import loaders
    from workflow_scripts.plan import parallel_source

    field, split = parallel_source(declaration)
    by_language, files, counts = {}, {}, {}
    for lang in languages:
        try:
            records, notes = loaders.load(declaration, lang, split, ("id", field))
        except DataError as err:
            raise DataError(f"xlrs.parallel: no parallel sentences for language {lang!r}: {err}") from err
        repeated = loaders.repeated_ids(records)
        if repeated:
            raise DataError(f"xlrs.parallel ({declaration.get('path') or declaration['loader']}): ids repeat in "
                            f"language {lang!r}, split {split!r} ({', '.join(repeated[:5])}); an id pairs a sentence "
                            f"with its translations, so each record needs one of its own")
        by_language[lang] = {r["id"]: r[field] for r in records}
        files[lang] = notes.get("ids_from_rows_of")
        # the rows the ids number: those kept and those the loader dropped (empty, NS...), before any cap
        counts[lang] = notes.get("capped_from", len(records)) + sum(
            n for key, n in notes.items() if key.startswith("dropped_"))
    # Ids made of row numbers pair a language's n-th row with another's: one line missing (or one blank line
    # skipped) in one file pairs every later sentence with the wrong translation.
    if any(files.values()) and len(set(counts.values())) > 1:
        found = ", ".join(f"{lang}: {files[lang] or 'its file'} has {counts[lang]} rows" for lang in languages)
        raise DataError(f"xlrs.parallel: the {split!r} ids are row numbers, which pair sentences across languages "
                        f"only where every language's file has the same rows, but {found}; line the files up (a "
                        f"missing or blank line shifts every later row) or give them an id column (dataset.columns.id)")
    shared = sorted(set.intersection(*(set(texts) for texts in by_language.values())))
    return {i: {lang: by_language[lang][i] for lang in languages} for i in shared}


def mean_pool(hidden, mask):
    """Average over real tokens only, so padding never changes a sentence's vector."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def tokenize_parallel(tokenizer, parallel: dict[str, list[str]], max_length: int) -> dict[str, list[list[int]]]:
    """Each language's sentences as token ids cut to max_length: a job tokenizes once, not per checkpoint."""
    from workflow_scripts.modeling import tokenize

    return {lang: tokenize(tokenizer, sentences, max_length)[0] for lang, sentences in parallel.items()}


def encode(model, rows: list[list[int]], pad_id: int, batch_size: int, max_length: int):
    """Mean-pooled encoder states per layer of token-id rows: a float32 tensor [layers + 1, sentences, d_model].

    Layer 0 is the embedding output; the last is the encoder's final (layer-normed) output.
    """
    import torch

    from workflow_scripts.modeling import autocast_for, length_sorted_batches

    device = next(model.parameters()).device
    pooled = [None] * len(rows)
    encoder = model.get_encoder()
    batches = length_sorted_batches(rows, pad_id, batch_size, max_length, device)
    with torch.inference_mode(), autocast_for(device):
        for index, batch in batches:
            states = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             output_hidden_states=True).hidden_states
            layers = torch.stack([mean_pool(h.float(), batch["attention_mask"]) for h in states], dim=1).cpu()
            for row, i in enumerate(index):
                pooled[i] = layers[row]
    return torch.stack(pooled, dim=1)


def similarity(source_vectors, target_vectors) -> list[float]:
    """Mean cosine similarity of aligned rows, per layer."""
    import torch

    return torch.nn.functional.cosine_similarity(source_vectors, target_vectors, dim=-1).mean(-1).tolist()


def xlrs_rows(model, pad_id: int, parallel_ids: dict[str, list[list[int]]], sources: list[str], targets: list[str],
              step: int, batch_size: int, max_length: int) -> list[dict]:
    """One model load, every (source, target) pair: each language (tokenize_parallel's ids) is encoded once."""
    vectors = {lang: encode(model, parallel_ids[lang], pad_id, batch_size, max_length)
               for lang in dict.fromkeys([*sources, *targets])}
    rows = []
    for target in targets:
        for source in sources:
            if source == target:
                continue
            per_layer = similarity(vectors[source], vectors[target])
            rows += [{"step": step, "source": source, "target": target, "layer": layer,
                      "last_layer": layer == len(per_layer) - 1, "xlrs": value, "n_pairs": len(parallel_ids[target])}
                     for layer, value in enumerate(per_layer)]
    return rows


def checkpoints_of(run_dir: Path, base_model: str) -> list[tuple[int, str]]:
    """(step, model reference) for step 0 (the model before fine-tuning) and every saved checkpoint."""
    steps = read_json(run_dir / "run.json")["checkpoints"]
    return [(0, base_model)] + [(step, str(checkpoint_path(run_dir, step))) for step in steps]


def main() -> None:
    import pandas as pd

    from workflow_scripts import modeling
    from workflow_scripts.files import write_json, write_tsv

    p = cli.parser(__doc__)
    p.add_argument("--run-dir", type=Path, required=True,
                   help="the run's directory (finetune's --out-dir): run.json and checkpoints/")
    cli.add_model(p, "the model before fine-tuning (step 0)")
    p.add_argument("--targets", nargs="+", help="target languages (default: the spec's target)")
    cli.add_batch_size(p, "xlrs")
    p.add_argument("--out", type=Path, required=True,
                   help="TSV: step, source, target, layer, last_layer, xlrs, n_pairs; its .meta.json beside it")
    cli.add_speed(p)
    args = p.parse_args()
    spec, speed = args.spec, modeling.speed_settings(args.speed)
    targets = args.targets or [spec["target"]]
    parallel = load_parallel(spec["parallel"], list(dict.fromkeys([*spec["sources"], *targets])),
                             spec["n_pairs"], spec["seed"])
    tokenizer = modeling.load_tokenizer(args.model, revision=args.model_revision)
    parallel_ids = tokenize_parallel(tokenizer, parallel, spec["max_length"])
    rows, model = [], None
    for step, ref in checkpoints_of(args.run_dir, args.model):
        started = time.monotonic()
        if model is None:  # step 0: the base model, in whatever format it comes
            model = modeling.load_model(ref, attention=speed["attention"], revision=args.model_revision).eval()
            modeling.check_vocabulary(tokenizer, model, ref)
        else:  # the run's own safetensors checkpoints: XLRS reads the encoder's half of each
            modeling.load_weights_into(model, ref, only=model.get_encoder())
        with modeling.lower_on_out_of_memory(f"{args.out}: XLRS at step {step}", "xlrs.batch_size", args.batch_size):
            found = xlrs_rows(model, tokenizer.pad_token_id, parallel_ids, spec["sources"], targets, step,
                              args.batch_size, spec["max_length"])
        log.info("step %d: last-layer XLRS %s (%d pairs; %.1f s with the load)", step,
                 ", ".join(f"{r['source']}-{r['target']} {r['xlrs']:.4f}" for r in found if r["last_layer"]),
                 len(parallel[targets[0]]), time.monotonic() - started)
        rows += found
    write_tsv(args.out, pd.DataFrame(rows))
    write_json(args.out.with_suffix(".meta.json"), {"spec": spec, "targets": targets, "speed": speed,
                                                    "batch_size": args.batch_size})


if __name__ == "__main__":
    cli.run(main)
