"""What a config costs before it runs: jobs per stage, checkpoints, GPU-hours and disk.

    python -m workflow_scripts.estimate config/paper.yaml

Throughput comes from benchmarks/record.json (this project's GPU benchmark) when it holds an mT5-base run on
a GPU, else from benchmarks/anchors.json (Hugging Face defaults on an H100), scaled linearly by parameter count.
GPU-hours include what each job pays besides its compute: its start and the checkpoints it loads, and at most
what torch.compile costs the study (every length bucket's shape compiled once; the record's cold compile).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from workflow_scripts.config import load_config
from workflow_scripts.decode import static_cache_for_job
from workflow_scripts.plan import Study

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
REFERENCE_PARAMETERS = 582_401_280  # mT5-base, the shape the benchmarks measure
# Hub configs of the mT5 family (d_model, d_ff, d_kv, heads, layers, vocab), for models not on disk.
KNOWN_SHAPES = {
    "google/mt5-small": (512, 1024, 64, 6, 8, 250112), "google/mt5-base": (768, 2048, 64, 12, 12, 250112),
    "google/mt5-large": (1024, 2816, 64, 16, 24, 250112), "google/mt5-xl": (2048, 5120, 64, 32, 24, 250112),
    "google/mt5-xxl": (4096, 10240, 64, 64, 24, 250112),
}


def t5_parameters(d_model, d_ff, d_kv, heads, layers, vocab, decoder_layers=None) -> int:
    """Untied gated-GELU T5 (mT5): shared embedding + lm_head + attention and feed-forward blocks."""
    decoder_layers = layers if decoder_layers is None else decoder_layers
    attention = 4 * d_model * d_kv * heads
    feed_forward = 3 * d_model * d_ff
    return 2 * vocab * d_model + layers * (attention + feed_forward) + decoder_layers * (2 * attention + feed_forward)


def t5_encoder_parameters(d_model, d_ff, d_kv, heads, layers, vocab) -> int:
    """What XLRS reads of each later checkpoint: the encoder and the shared embedding (no decoder, no lm_head)."""
    return t5_parameters(d_model, d_ff, d_kv, heads, layers, vocab, decoder_layers=0) - vocab * d_model


# mT5-base's share of bytes in an encoder-only load, for a load time known only for whole checkpoints
ENCODER_SHARE = t5_encoder_parameters(*KNOWN_SHAPES["google/mt5-base"]) / REFERENCE_PARAMETERS
CHECKPOINT_BYTES_PER_PARAMETER = 2  # bf16 weights only
STATE_BYTES_PER_PARAMETER = 12  # the resume state: fp32 weights and AdamW's two fp32 moments
STATE_BYTES_PER_WEIGHT_BYTE = STATE_BYTES_PER_PARAMETER / CHECKPOINT_BYTES_PER_PARAMETER


def model_parameters(study: Study) -> int | None:
    model = study.config["model"]
    if "build" in model:
        b = model["build"]
        return t5_parameters(b["d_model"], b["d_ff"], b["d_kv"], b["num_heads"], b["num_layers"], b["vocab_size"] + 100,
                             b["num_decoder_layers"])
    config_file = Path(study.model_ref) / "config.json"
    if config_file.exists():
        c = json.loads(config_file.read_text())
        return t5_parameters(c["d_model"], c["d_ff"], c["d_kv"], c["num_heads"], c["num_layers"], c["vocab_size"],
                             c.get("num_decoder_layers"))
    shape = KNOWN_SHAPES.get(study.model_ref)
    return t5_parameters(*shape) if shape else None


# The layout of benchmarks/record.json that this module reads (benchmarks/bench.py writes it): bump both together.
# 2: decode.baseline is generate on the same weights as ours (1: on fp32 weights).
RECORD_VERSION = 2


def throughput() -> dict:
    """Training samples/s, new tokens/s (dynamic and static cache), encoded sentences/s, a GPU job's start and a
    checkpoint's load (whole, and its encoder only) for mT5-base on one GPU: our side of the benchmark record, or
    the anchors (whose figures are the Hugging Face defaults)."""
    record_file = BENCHMARKS / "record.json"
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    anchors = json.loads((BENCHMARKS / "anchors.json").read_text())
    # None, a smoke test (tiny shape, CPU), a record of some sections only, or an older layout
    if not record.get("targets", {}).get("apply") or not {"finetune", "decode", "xlrs"} <= record.keys() \
            or record.get("record_version") != RECORD_VERSION:
        return {**anchors, "what": "benchmarks/anchors.json: Hugging Face defaults measured by issue 7's author, not "
                                   "our speed settings; encoding, job starts and loads assumed",
                "generate_new_tokens_per_second_static_cache": anchors["generate_new_tokens_per_second"],
                "encoder_load_seconds": anchors["checkpoint_load_seconds"] * ENCODER_SHARE,
                "train_compile_seconds": 0.0, "decode_compile_seconds": 0.0}  # the anchors ran uncompiled
    decode, xlrs = record["decode"], record["xlrs"]
    return {"device": record["device"], "what": f"benchmarks/record.json of {record['date']}, our side",
            "train_samples_per_second": record["finetune"]["ours"]["samples_per_s"],
            # Without the static cache our decoding is generate's on the same (bf16) weights: the baseline.
            "generate_new_tokens_per_second": decode["baseline"]["new_tokens_per_s"],
            "generate_new_tokens_per_second_static_cache": decode["ours"]["new_tokens_per_s"],
            "encode_sentences_per_second": xlrs["sentences"] * xlrs["languages"] / xlrs["seconds"],
            "job_start_seconds": xlrs.get("job_start_seconds") or anchors["job_start_seconds"],
            # from the page cache there: a lower bound for a cluster's shared storage
            "checkpoint_load_seconds": xlrs.get("next_checkpoint_load_seconds", anchors["checkpoint_load_seconds"]),
            "encoder_load_seconds": xlrs.get("next_encoder_load_seconds",
                                             anchors["checkpoint_load_seconds"] * ENCODER_SHARE),
            "checkpoint_save_seconds": xlrs.get("checkpoint_save_seconds", anchors["checkpoint_save_seconds"]),
            # A cold compile: the first step less a step; the warm-up batch less a timed batch (none uncompiled).
            "train_compile_seconds": max(0.0, record["finetune"]["ours"]["first_step_s"]
                                         - record["finetune"]["ours"]["step_s"]),
            "decode_compile_seconds": max(0.0, decode["ours"]["warmup_s"]
                                          - decode["ours"]["seconds"] * decode["batch"] / decode["sequences"])}


def known_test_size(study: Study, task: str, lang: str) -> int | None:
    """A test set's size where it is known: its prepared file's count, else dataset.sizes.test."""
    meta = Path(study.data_path(task, lang, "test")).with_suffix(".meta.json")
    if meta.exists():
        return json.loads(meta.read_text())["count"]
    return study.config["tasks"][task]["dataset"].get("sizes", {}).get("test")


def test_sequences(study: Study, task: str, lang: str) -> int:
    """A test set's decoded size: its known size, else the cap decode.test_size (an upper bound; assumed_test_sizes
    names them)."""
    cap, known = study.config["decode"]["test_size"], known_test_size(study, task, lang)
    return cap if known is None else min(cap, known)


def assumed_test_sizes(study: Study) -> set[str]:
    """The test sets whose size the estimate takes as decode.test_size: neither prepared nor sized in the config."""
    return {f"{task}/{lang}" for task, lang in {(run.task, lang) for run in study.runs.values()
                                               for lang in study.eval_languages(run)}
            if known_test_size(study, task, lang) is None}


def bucket_lengths(longest: int, bucket: int) -> set[int]:
    """The padded lengths a length bucket gives up to `longest` (modeling.padded_length: the cap is one too)."""
    return {min(multiple, longest) for multiple in range(bucket, longest + bucket, bucket)}


def compiled_shapes(study: Study, static_cache_runs: set) -> dict:
    """At most how many shapes torch.compile compiles for the study, each once into the study's shared cache
    (cli.COMPILE_CACHE_VARIABLE): training, a (micro-batch, source bucket, target bucket) per run's lengths;
    decoding, a (batch, source bucket, new tokens) per static-cache job's. Which buckets the data fill is not
    known before the jobs run, hence an upper bound; a later job loading a shape from the cache is not counted."""
    speed = study.config["speed"]
    training, decoding = set(), set()
    for run in study.runs.values():
        train = run.spec["train"]
        batch = train.get("micro_batch_size") or train["batch_size"]
        sources = bucket_lengths(train["max_source_length"], speed["source_bucket"])
        training |= {(batch, source, target) for source in sources
                     for target in bucket_lengths(train["max_target_length"], speed["target_bucket"])}
        if run.id in static_cache_runs:
            decoding |= {(study.config["decode"]["batch_size"], source, study.max_new_tokens(run))
                         for source in sources}
    return {"finetune": len(training), "decode": len(decoding)}


def count_work(study: Study) -> dict:
    """What the study's GPU jobs do, counted from its plan: jobs per stage, training samples, checkpoints saved and
    loaded, new tokens decoded (by whether the job compiles a static cache) and sentences XLRS encodes."""
    decode, xlrs = study.config["decode"], study.config["xlrs"]
    static_cache = study.config.get("speed", {}).get("static_cache", "auto")
    data_jobs = len(study.prepared_splits())  # prepare and cast: a job per split
    work = {"jobs": {"prepare": data_jobs, "cast": data_jobs, "build_model": int(study.builds_model),
                     "finetune": len(study.runs), "xlrs": 0, "decode": 0, "score": 0, "select": 0, "aggregate": 2},
            "train_samples": 0, "checkpoints": 0, "xlrs_sentences": 0,
            "loads": {"finetune": 0, "decode": 0, "xlrs": 0},  # whole checkpoints loaded, the base model included
            "encoder_loads": 0,  # XLRS's loads after step 0, which read only the encoder
            "new_tokens": {False: 0, True: 0},  # by whether the decode job uses the static cache (on a GPU)
            "static_cache_runs": set()}  # runs with a decode job that compiles
    jobs, loads = work["jobs"], work["loads"]
    for run in study.runs.values():
        params = run.spec["train"]
        k = params["checkpoints"]
        work["train_samples"] += params["n_train"] * params["epochs"]
        work["checkpoints"] += k
        loads["finetune"] += 1
        measured = set(study.xlrs_languages(run))
        for lang in study.eval_languages(run):
            jobs["decode"] += 2
            jobs["score"] += 2
            jobs["select"] += 1
            rules = 3 if lang in measured else 2  # cos-sim needs XLRS in the target
            # dev: every checkpoint; test: at most one checkpoint per selection rule
            loads["decode"] += k + rules
            for sequences in (k * decode["dev_size"], rules * test_sequences(study, run.task, lang)):
                compiled = static_cache_for_job(static_cache, sequences) is not False
                work["new_tokens"][compiled] += sequences * study.max_new_tokens(run)
                if compiled:
                    work["static_cache_runs"].add(run.id)
        for lang in study.xlrs_languages(run):
            jobs["xlrs"] += 1
            loads["xlrs"] += 1
            work["encoder_loads"] += k
            work["xlrs_sentences"] += (k + 1) * xlrs["n_pairs"] * (1 + len(run.sources))
    return work


def estimate(study: Study) -> dict:
    parameters = model_parameters(study)
    scale = (parameters or REFERENCE_PARAMETERS) / REFERENCE_PARAMETERS
    rates, work = throughput(), count_work(study)
    jobs, loads, checkpoints, new_tokens = work["jobs"], work["loads"], work["checkpoints"], work["new_tokens"]
    # Each job starts a process and loads its checkpoints: XLRS runs one job per (run, language), so for it these
    # cost more than the encoding itself.
    checkpoint_seconds = {stage: loads[stage] * rates["checkpoint_load_seconds"] for stage in loads}
    checkpoint_seconds["xlrs"] += work["encoder_loads"] * rates["encoder_load_seconds"]
    # Fine-tuning saves each checkpoint's bf16 weights and, before its last, the resume state: fp32 weights and
    # AdamW's two moments, six times the bytes, taken to write at the weights' rate.
    saves = checkpoints + STATE_BYTES_PER_WEIGHT_BYTE * (checkpoints - len(study.runs))
    checkpoint_seconds["finetune"] += saves * rates["checkpoint_save_seconds"]
    overhead = {stage: (jobs[stage] * rates["job_start_seconds"] + scale * checkpoint_seconds[stage]) / 3600
                for stage in loads}
    hours = {"finetune": work["train_samples"] * scale / rates["train_samples_per_second"] / 3600,
             "decode": scale / 3600 * (new_tokens[False] / rates["generate_new_tokens_per_second"] +
                                       new_tokens[True] / rates["generate_new_tokens_per_second_static_cache"]),
             "xlrs": work["xlrs_sentences"] * scale / rates["encode_sentences_per_second"] / 3600}
    shapes = compiled_shapes(study, work["static_cache_runs"])
    compile_hours = {"finetune": shapes["finetune"] * rates["train_compile_seconds"] * scale / 3600,
                     "decode": shapes["decode"] * rates["decode_compile_seconds"] * scale / 3600}
    hours = {stage: value + overhead[stage] + compile_hours.get(stage, 0) for stage, value in hours.items()}
    bytes_per_checkpoint = CHECKPOINT_BYTES_PER_PARAMETER * (parameters or REFERENCE_PARAMETERS)
    state_bytes = STATE_BYTES_PER_PARAMETER * (parameters or REFERENCE_PARAMETERS)
    return {"model": study.model_ref, "parameters": parameters, "runs": len(study.runs), "checkpoints": checkpoints,
            "jobs": jobs,
            "gpu_hours": {k: round(v, 1) for k, v in hours.items()} | {"total": round(sum(hours.values()), 1)},
            "checkpoint_loads": loads, "encoder_only_loads": work["encoder_loads"],
            "start_and_load_hours": {k: round(v, 1) for k, v in overhead.items()},
            "start_and_load_seconds": [round(rates["job_start_seconds"], 2),
                                       round(scale * rates["checkpoint_load_seconds"], 2),
                                       round(scale * rates["encoder_load_seconds"], 2)],
            "checkpoint_save_seconds": round(scale * rates["checkpoint_save_seconds"], 2),
            "compiled_shapes_at_most": shapes,
            "compile_hours_at_most": {k: round(v, 1) for k, v in compile_hours.items()},
            "compile_seconds": [round(scale * rates["train_compile_seconds"], 1),
                                round(scale * rates["decode_compile_seconds"], 1)],
            "disk_gb": {"checkpoints": round(checkpoints * bytes_per_checkpoint / 1e9, 1),
                        # the new state is written before the old one goes
                        "resume_state_per_running_job": round(state_bytes / 1e9, 1),
                        "resume_state_peak_per_running_job": round(2 * state_bytes / 1e9, 1)},
            "test_sizes_assumed": sorted(assumed_test_sizes(study)),
            "throughput_from": rates.get("device", "?") + ": " + rates.get("what", "")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configfile", nargs="?", default="config.yaml", help="the study's config (default: config.yaml)")
    args = p.parse_args()
    plan = estimate(Study(load_config(args.configfile)))
    width = max(len(k) for k in plan["jobs"])
    print(f"model {plan['model']} ({plan['parameters'] or 'unknown'} parameters)")
    print(f"{plan['runs']} fine-tuning runs, {plan['checkpoints']} checkpoints")
    for stage, count in plan["jobs"].items():
        print(f"  {stage:<{width}}  {count:>6} jobs")
    print("GPU-hours: " + ", ".join(f"{k} {v}" for k, v in plan["gpu_hours"].items()))
    start, load, encoder_load = plan["start_and_load_seconds"]
    print("  of them job starts, checkpoint loads and fine-tuning's saves: " +
          ", ".join(f"{k} {v}" for k, v in plan["start_and_load_hours"].items()))
    print(f"  ({start:g} s a start, {load:g} s a checkpoint, {encoder_load:g} s for each of XLRS's "
          f"{plan['encoder_only_loads']} encoder-only loads; {plan['checkpoint_save_seconds']:g} s to save a "
          f"checkpoint, {STATE_BYTES_PER_WEIGHT_BYTE:g} times that for its resume state)")
    train_compile, decode_compile = plan["compile_seconds"]
    print(f"  and torch.compile, at most: {plan['compiled_shapes_at_most']['finetune']} training shapes x "
          f"{train_compile:g} s, {plan['compiled_shapes_at_most']['decode']} decoding shapes x {decode_compile:g} s "
          f"(each compiled once into the study's shared cache; later jobs' loads from it not counted): "
          f"finetune {plan['compile_hours_at_most']['finetune']}, "
          f"decode {plan['compile_hours_at_most']['decode']}")
    print(f"disk: {plan['disk_gb']['checkpoints']} GB of checkpoints, plus "
          f"{plan['disk_gb']['resume_state_per_running_job']} GB of resume state per running fine-tuning job "
          f"({plan['disk_gb']['resume_state_peak_per_running_job']} GB while it replaces the last one)")
    if plan["test_sizes_assumed"]:
        print(f"test decodes: {len(plan['test_sizes_assumed'])} test sets are neither prepared nor sized "
              "(dataset.sizes.test), so they count as decode.test_size, an upper bound; after `--until prepare` "
              "the estimate reads their sizes")
    print(f"throughput: {plan['throughput_from']}")


if __name__ == "__main__":
    from workflow_scripts import cli

    cli.run(main)
