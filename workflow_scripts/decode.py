"""Stage 5, decode: generate outputs of one target language at chosen checkpoints of a run.

Dev sets are decoded at every checkpoint (checkpoint selection needs them); test sets only at the
checkpoints the selection rules pick. Inputs are sorted by length and batched; greedy or beam search
from config; over-long inputs are truncated (keeping the template's end) and counted. Output: JSONL with step,
id, input, reference, prediction, and the gold record for scoring.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from workflow_scripts import cli, tasks
from workflow_scripts.files import checkpoint_path, read_json, read_jsonl, write_json, write_jsonl

# speed.static_cache "auto" compiles only jobs of at least this many sequences (inputs x checkpoints): the
# compile is paid per input shape (later checkpoints are loaded into the same model), and a dev set of 250
# decodes in seconds without it. Measured (benchmarks/record.json, H200, batch 256 x 400 source tokens): a shape
# compiled in 15 s (21-28 s in other runs) and then saved 3.7 ms a sequence of 64 new tokens (23.9k against 10.0k
# new tokens/s), so a shape pays from about 4,000-7,500 sequences; a job's inputs span up to 4 shapes
# (max_source_length 512 / source_bucket 128) and stop before 64 tokens, so the threshold is 10,000.
STATIC_CACHE_MIN_SEQUENCES = 10_000
log = logging.getLogger("decode")


def generate(model, tokenizer, inputs: list[str], batch_size: int, num_beams: int, max_new_tokens: int,
             max_source_length: int, speed: dict | None = None) -> tuple[list[str], int]:
    """Predictions in input order, and how many inputs were cut to max_source_length. main does the same in two
    steps, tokenizing once for all checkpoints and keeping the template's end (tasks.TaskKind.tail) in a cut."""
    from workflow_scripts.modeling import tokenize

    rows, truncated = tokenize(tokenizer, inputs, max_source_length)
    return generate_from_ids(model, tokenizer, rows, batch_size, num_beams, max_new_tokens, max_source_length,
                             speed), truncated


def generate_from_ids(model, tokenizer, rows: list[list[int]], batch_size: int, num_beams: int, max_new_tokens: int,
                      max_source_length: int, speed: dict | None = None) -> list[str]:
    """Predictions for token-id rows (modeling.tokenize's), in their order."""
    import torch

    from workflow_scripts.modeling import before_compiling, length_sorted_batches, speed_settings, wanted

    speed = speed_settings(speed)
    device = next(model.parameters()).device
    predictions = [""] * len(rows)
    # A static KV cache lets transformers compile the decoding step on CUDA (benchmarks/anchors.json: 2x over
    # the dynamic cache); every new source length is a new shape, hence the length buckets.
    options = {"cache_implementation": "static"} if wanted(speed["static_cache"], device) else {}
    bucket = speed["source_bucket"] if options else 1
    if options:
        before_compiling()
    # Longest first: a batch that does not fit in memory fails at once, not at the end.
    batches = length_sorted_batches(rows, tokenizer.pad_token_id, batch_size, max_source_length, device,
                                    descending=True, bucket=bucket)
    # bf16 weights (decode.main's on CUDA) decode under bf16 autocast too, on any device, so that a CPU runs the
    # GPU's path; fp32 weights decode in fp32 (the CPU's, and the benchmark's fp32 check on a GPU).
    bf16 = next(model.parameters()).dtype == torch.bfloat16
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        for index, batch in batches:
            if options and len(index) < batch_size:
                # One batch size for the compiled step: the short last batch is filled up with copies of its
                # first row (rows decode independently), whose outputs are dropped.
                batch = {key: torch.cat([tensor, tensor[:1].expand(batch_size - len(index), -1)])
                         for key, tensor in batch.items()}
            output = model.generate(**batch, num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False,
                                    **options)[:len(index)]
            # Keep sentinels: the tagging and cloze templates answer through them.
            texts = tokenizer.batch_decode(output, skip_special_tokens=False)
            for i, text in zip(index, texts):
                predictions[i] = clean(text, tokenizer)
    return predictions


def clean(text: str, tokenizer) -> str:
    for token in (tokenizer.pad_token, tokenizer.eos_token):
        if token:
            text = text.replace(token, "")
    return " ".join(text.split())


def static_cache_for_job(setting, sequences: int):
    """speed.static_cache for a job decoding `sequences` (inputs x checkpoints): "auto" stays "auto" (on CUDA)
    only for a job large enough to repay the compile."""
    return False if setting == "auto" and sequences < STATIC_CACHE_MIN_SEQUENCES else setting


def steps_to_decode(run_dir: Path, selection: Path | None) -> list[int]:
    if selection is None:
        return read_json(run_dir / "run.json")["checkpoints"]
    chosen = read_json(selection, required=("selection",))["selection"].values()
    return sorted({step for step in chosen if step is not None})


def load_checkpoint(model, ref: str, tokenizer, attention: str):
    """The checkpoint `ref` to decode with: loaded the first time; later, its weights copied into the same model,
    which keeps what generate compiled for the last checkpoint."""
    import torch

    from workflow_scripts import modeling

    if model is not None:
        modeling.load_weights_into(model, ref)
        return model
    # bf16 weights on CUDA decode faster than fp32 weights under autocast (benchmarks/anchors.json: 12.1k against
    # 7.2k new tokens/s), parting from them only at near-ties (benchmarks/README.md); checkpoints trained on a GPU
    # are stored in bf16 anyway.
    model = modeling.load_model(ref, dtype=torch.bfloat16 if torch.cuda.is_available() else None,
                                attention=attention).eval()
    modeling.check_vocabulary(tokenizer, model, ref)
    return model


def main() -> None:
    from workflow_scripts import modeling

    p = cli.parser(__doc__)
    p.add_argument("--run-dir", type=Path, required=True,
                   help="the run's directory (finetune's --out-dir): run.json and checkpoints/")
    p.add_argument("--data", type=Path, required=True, help="the language's cast split (JSONL) to decode")
    p.add_argument("--selection", type=Path, help="test split: the selection JSON whose checkpoints to decode")
    cli.add_batch_size(p, "decode")
    p.add_argument("--out", type=Path, required=True,
                   help="JSONL: step, id, input, reference, prediction and the gold record, per input and step")
    cli.add_speed(p)
    args = p.parse_args()
    speed = modeling.speed_settings(args.speed)
    spec = args.spec
    examples = read_jsonl(args.data, required=("id", "input", "target"))
    examples = examples[: spec["size"]]
    steps = steps_to_decode(args.run_dir, args.selection)
    speed["static_cache"] = static_cache_for_job(speed["static_cache"], len(examples) * len(steps))
    records, truncated, model = [], 0, None
    if steps:  # every checkpoint of a run saves the same tokenizer
        tokenizer = modeling.load_tokenizer(str(checkpoint_path(args.run_dir, steps[0])))
        rows, truncated = modeling.tokenize(tokenizer, [e["input"] for e in examples], spec["max_source_length"],
                                            tasks.kind(spec["kind"]).tail)
    decoded = decoded_steps_dir(args.out)
    for step in steps:
        started, ref, done = time.monotonic(), str(checkpoint_path(args.run_dir, step)), decoded / f"{step:06d}.jsonl"
        if done.exists():
            records += read_jsonl(done, allow_empty=True)
            log.info("step %d: decoded by an earlier try of this job, read back from %s", step, done)
            continue
        model = load_checkpoint(model, ref, tokenizer, speed["decode_attention"])
        # Longest batch first: a batch size too large fails at a checkpoint's first batch.
        with modeling.lower_on_out_of_memory(f"{args.out}: decoding at step {step}", "decode.batch_size",
                                             args.batch_size):
            predictions = generate_from_ids(model, tokenizer, rows, args.batch_size, spec["num_beams"],
                                            spec["max_new_tokens"], spec["max_source_length"], speed)
        log.info("step %d: %d inputs decoded in %.1f s with the load (%d cut to max_source_length)", step,
                 len(examples), time.monotonic() - started, truncated)
        step_records = [{"step": step, "id": e["id"], "input": e["input"], "reference": e["target"],
                         "prediction": prediction, "record": e["record"]}
                        for e, prediction in zip(examples, predictions)]
        write_jsonl(done, step_records)
        records += step_records
    if model is not None and modeling.wanted(speed["static_cache"], model.device):  # transformers compiles on CUDA only
        modeling.check_compiled(f"{args.out}: the static-cache decoding step", "static_cache",
                                expect_graphs=model.device.type == "cuda")
    write_jsonl(args.out, records)
    write_json(args.out.with_suffix(".meta.json"), {"spec": spec, "examples": len(examples),
                                                    "truncated_inputs": truncated, "speed": speed,
                                                    "batch_size": args.batch_size})
    shutil.rmtree(decoded, ignore_errors=True)


def decoded_steps_dir(out: Path) -> Path:
    """Where a decode job keeps each checkpoint's finished decodes until its output is written. Snakemake deletes
    the output of a failed or killed job but not this directory, so the job run again (a SLURM time limit, a
    preempted node, a failure at a late checkpoint) decodes only the checkpoints it lacks. The output's path
    carries the digest of everything the job reads, so nothing here can belong to another job."""
    return out.with_name(out.name + ".steps")


if __name__ == "__main__":
    cli.run(main)
