"""Benchmark the workflow's model code against plain Hugging Face, in one run on one device.

Fine-tuning (finetune.train_step vs Seq2SeqTrainer), decoding (decode.generate vs model.generate),
XLRS of one checkpoint (modeling.load_model + xlrs.xlrs_rows), the size of a saved checkpoint, and what each
workflow job pays besides its compute (its start, a further checkpoint's load), on a random-init mT5-shaped
model and synthetic token sequences. See benchmarks/README.md.

    python -m benchmarks.bench --shape mt5-base --out benchmarks/record.json    # on a GPU
    python -m benchmarks.bench --shape tiny --device cpu --out /tmp/record.json  # smoke test, seconds
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from workflow_scripts import decode, finetune, modeling, xlrs
from workflow_scripts.cli import COMPILE_CACHE_VARIABLE
from workflow_scripts.estimate import RECORD_VERSION
from benchmarks import agreement
from benchmarks.synthetic import IdTokenizer, hf_collator, synthetic, text
from workflow_scripts.build_model import untie_output_layer

SHAPES = {
    "mt5-base": dict(model=dict(vocab_size=250112, d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12,
                                num_decoder_layers=12),
                     source=(150, 512), target=(20, 64), batch=32, steps=50, warmup=5, decode_batch=256,
                     decode_source=400, new_tokens=64, xlrs_sentences=512, xlrs_length=(16, 128)),
    "tiny": dict(model=dict(vocab_size=1000, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                            num_decoder_layers=2),
                 source=(12, 40), target=(4, 12), batch=32, steps=20, warmup=2, decode_batch=16,
                 decode_source=24, new_tokens=8, xlrs_sentences=64, xlrs_length=(4, 24)),
}
LANGUAGES = ["en", "de", "es", "fr", "zh", "ar", "hi", "ru", "ja", "ko", "pt", "it", "tr", "vi", "id", "th", "sw"]
PEAK_TFLOPS = {"H100": 989.0, "H200": 790.0}  # bf16 dense: H100 SXM datasheet; H200 as measured in this workplace
LEARNING_RATE, MAX_GRAD_NORM = 7e-5, 1.0  # the paper's lr; the config schema's and the Trainer's clipping
# In the order they run: the quickest first, so that a run cut short by a time limit keeps the most.
# xlrs includes the checkpoint's size; fp32_check (after a bf16 run only) decodes one batch in fp32.
SECTIONS = ("xlrs", "finetune", "decode", "fp32_check")
XLRS_BATCH, XLRS_MAX_LENGTH = 64, 256  # the config schema's xlrs defaults
# Relative loss differences allowed: fp32 differs only in summation order; bf16 keeps 8 mantissa bits (0.4%).
TOLERANCE = {"fp32": {"first": 1e-5, "curve": 1e-4}, "bf16": {"first": 1e-2, "curve": 3e-2}}
TARGETS = {"finetune_speedup": 3.0, "finetune_memory_ratio": 1.0, "decode_speedup": 3.0,
           "decode_identical": {"fp32": 1.0, "bf16": 0.99}, "xlrs_seconds": 10.0,
           "checkpoint_bytes_per_parameter": [1.9, 2.1]}  # bf16: 2 bytes; mT5-base 582M parameters: 1.16 GB


def sync(device) -> float:
    """The time once the device has finished its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def reset_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device):  # since the last reset_memory
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def build_model(shape: dict, seed: int, dropout: float):
    from transformers import MT5Config, MT5ForConditionalGeneration

    config = MT5Config(**shape["model"], dropout_rate=dropout, decoder_start_token_id=0, pad_token_id=0,
                       eos_token_id=1)
    torch.manual_seed(seed)
    return untie_output_layer(MT5ForConditionalGeneration(config))


def train_params(shape: dict) -> dict:
    return {"micro_batch_size": shape["batch"], "max_grad_norm": MAX_GRAD_NORM, "learning_rate": LEARNING_RATE,
            "weight_decay": 0.0, "max_source_length": shape["source"][1], "max_target_length": shape["target"][1]}


def train_ours(template, examples, shape, steps, device, speed, precision):
    """finetune.train_step on finetune.encode_pairs' output, set up by finetune.setup_training as every run is."""
    from accelerate.state import AcceleratorState

    reset_memory(device)
    params = train_params(shape)
    training = finetune.setup_training(copy.deepcopy(template), params, speed, device,
                                       "bf16" if precision == "bf16" else "no")
    training.model.train()
    tokenizer = IdTokenizer()
    pairs = finetune.encode_pairs(tokenizer, [{"input": text(s), "target": text(t)} for s, t in examples], params)[0]
    batches = [pairs[step * shape["batch"]:(step + 1) * shape["batch"]] for step in range(steps)]
    # The host's share of a step (padding a batch; the copy to the device is asynchronous): it runs while the
    # device does the previous step's optimizer update, so a background loader would have nothing to hide.
    start = time.perf_counter()
    for batch in batches:
        finetune.collate(batch, tokenizer.pad_token_id, params, training.buckets)
    collate_s = (time.perf_counter() - start) / steps
    losses, times = [], [sync(device)]
    for batch in batches:
        losses.append(finetune.train_step(training, batch, tokenizer.pad_token_id, params))
        times.append(sync(device))
    run = {"losses": losses, "times": times, "memory": peak_memory(device), "collate_s": collate_s,
           "compile": modeling.compile_counts() if training.compiled else None}
    training.accelerator.free_memory(training.model, training.optimizer)
    torch._dynamo.reset()  # compiled code can hold the model: the Trainer's peak memory must not include it
    AcceleratorState._reset_state(True)  # the Trainer builds its own Accelerator
    return run


def train_trainer(template, examples, shape, steps, device, seed, precision):
    """Seq2SeqTrainer with its defaults, except: the same data order (sequential, not random), a constant lr
    and clipping at 1.0 (as ours), no saving or reporting, a loss logged every step, no progress output."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    class Record(TrainerCallback):
        def __init__(self):
            self.losses, self.times = [], []

        def on_step_begin(self, args, state, control, **kwargs):
            if not self.times:
                self.times.append(sync(device))

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(sync(device))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    reset_memory(device)
    record = Record()
    with tempfile.TemporaryDirectory() as out:
        args = Seq2SeqTrainingArguments(
            output_dir=out, per_device_train_batch_size=shape["batch"], learning_rate=LEARNING_RATE,
            max_steps=steps, bf16=precision == "bf16", use_cpu=device.type == "cpu", report_to=[],
            save_strategy="no", logging_steps=1, train_sampling_strategy="sequential", lr_scheduler_type="constant",
            max_grad_norm=MAX_GRAD_NORM, disable_tqdm=True, seed=seed)
        trainer = Seq2SeqTrainer(model=copy.deepcopy(template), args=args,
                                 train_dataset=[{"input_ids": s, "labels": t} for s, t in examples],
                                 data_collator=hf_collator, callbacks=[record])
        trainer.remove_callback(PrinterCallback)  # it prints a dict per step; Record keeps the loss
        trainer.train()
        untied = trainer.model.lm_head.weight.data_ptr() != trainer.model.shared.weight.data_ptr()
        memory = peak_memory(device)
        del trainer
    return {"losses": record.losses, "times": record.times, "memory": memory, "head_untied": untied}


def step_flops(model, source_tokens: float, target_tokens: float, per_token: int = 6) -> tuple[float, float]:
    """6 x parameters x tokens, each parameter against the tokens that pass through it (source: the encoder and
    cross-attention's keys and values; target: the rest of the decoder and lm_head; embedding lookups and
    attention scores not counted); and the literal 6 x all parameters x all tokens, which overcounts an
    encoder-decoder with a 250k vocabulary ~5x. per_token=2: a forward pass (decoding, where cross-attention's
    keys and values are computed once per sequence, over its source tokens)."""
    def count(selected):
        return sum(p.numel() for n, p in model.named_parameters() if selected(n))
    cross_kv = count(lambda n: ".EncDecAttention.k." in n or ".EncDecAttention.v." in n)  # decoder only
    on_source = count(lambda n: n.startswith("encoder.")) + cross_kv
    on_target = count(lambda n: n.startswith(("decoder.", "lm_head."))) - cross_kv
    return (per_token * (on_source * source_tokens + on_target * target_tokens),
            per_token * sum(p.numel() for p in model.parameters()) * (source_tokens + target_tokens))


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def finetune_section(template, shape, args, device, precision):
    total, batch, vocab = args.warmup + args.steps, shape["batch"], shape["model"]["vocab_size"]
    rng = random.Random(args.seed)
    examples = list(zip(synthetic(rng, total * batch, shape["source"], vocab),
                        synthetic(rng, total * batch, shape["target"], vocab)))
    # The first batch through both collators: both sides must see identical tensors (ours pads further, to its
    # length buckets, with masked positions; without buckets the tensors must be equal).
    params = train_params(shape)
    pairs = finetune.encode_pairs(IdTokenizer(), [{"input": text(s), "target": text(t)} for s, t in examples[:batch]],
                                  params)[0]
    ours_batch = finetune.collate(pairs, IdTokenizer.pad_token_id, params)
    hf_batch = hf_collator([{"input_ids": s, "labels": t} for s, t in examples[:batch]])
    assert all(torch.equal(ours_batch[k], hf_batch[k]) for k in hf_batch), "the two collators disagree"
    runs = {"ours": train_ours(template, examples, shape, total, device, args.speed, precision),
            "baseline": train_trainer(template, examples, shape, total, device, args.seed, precision)}
    timed = examples[args.warmup * batch:]
    source, target = (sum(len(pair[i]) for pair in timed) / args.steps for i in (0, 1))
    flops, flops_naive = step_flops(template, source, target)
    figures = {}
    for name, run in runs.items():
        # times[0] is the start of step 1, times[k] the end of step k.
        times = run["times"]
        step_s = (times[-1] - times[args.warmup]) / args.steps
        figures[name] = {"samples_per_s": batch / step_s, "step_s": step_s,
                         "real_tokens_per_s": (source + target) / step_s, "tflops": flops / step_s / 1e12,
                         "utilisation": flops / step_s / 1e12 / args.peak_tflops if args.peak_tflops else None,
                         "utilisation_6ND_all_params": (flops_naive / step_s / 1e12 / args.peak_tflops
                                                        if args.peak_tflops else None),
                         "peak_memory_bytes": run["memory"],
                         "first_step_s": times[1] - times[0]}  # includes torch.compile's compilation
    figures["ours"].update(compile=runs["ours"]["compile"],  # torch.compile's graphs, failures, breaks
                           collate_s_per_step=runs["ours"]["collate_s"])
    ours, baseline = runs["ours"]["losses"], runs["baseline"]["losses"]
    tolerance = TOLERANCE[precision]
    first, curve = relative(ours[0], baseline[0]), max(relative(a, b) for a, b in zip(ours, baseline))
    math = {"precision": precision, "steps": total, "tolerance_relative": tolerance,
            "first_loss": {"ours": ours[0], "baseline": baseline[0], "relative_difference": first,
                           "pass": first <= tolerance["first"]},
            "curve": {"max_relative_difference": curve,
                      "pass": curve <= tolerance["curve"] and len(ours) == len(baseline) == total},
            "losses": {"ours": ours, "baseline": baseline}, "baseline_head_untied": runs["baseline"]["head_untied"]}
    memory = [figures[name]["peak_memory_bytes"] for name in ("ours", "baseline")]
    return {"batch": batch, "warmup_steps": args.warmup, "timed_steps": args.steps,
            "real_tokens_per_step": {"source": source, "target": target}, "flops_per_step": flops,
            "flops_per_step_6ND_all_params": flops_naive, "flops_formula": " ".join(step_flops.__doc__.split()),
            "peak_tflops": args.peak_tflops, **figures,
            "ratio": {"samples_per_s": figures["ours"]["samples_per_s"] / figures["baseline"]["samples_per_s"],
                      "peak_memory": memory[0] / memory[1] if all(memory) else None}}, math


def decode_sources(shape: dict, args) -> list[list[int]]:
    length = shape["decode_source"]
    return synthetic(random.Random(args.seed + 1), args.decode_batch * args.decode_batches, (length, length),
                     shape["model"]["vocab_size"])


def decode_ours(model, texts: list[str], shape: dict, args) -> list[str]:
    return decode.generate(model, IdTokenizer(), texts, args.decode_batch, 1, shape["new_tokens"],
                           shape["decode_source"], args.speed)[0]


def decode_generate(model, rows: list[list[int]], shape: dict, args, device, autocast: bool) -> list[str]:
    """model.generate with its defaults (greedy), a batch at a time."""
    outputs, tokenizer, new = [], IdTokenizer(), shape["new_tokens"]
    for start in range(0, len(rows), args.decode_batch):
        ids, mask = modeling.pad_rows(rows[start:start + args.decode_batch], 0)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=new,
                                 do_sample=False)
        assert out.shape[1] == new + 1, "generate stopped early"
        outputs += [decode.clean(t, tokenizer) for t in tokenizer.batch_decode(out.cpu())]
    return outputs


def decode_section(template, shape, args, device, precision):
    """Ours: decode.generate on bf16 weights (CUDA), as decode.main loads a checkpoint. Baseline: model.generate
    with its defaults on the same weights (transformers 5 loads our bf16 checkpoint as bf16). After a bf16 run
    also generate on fp32 weights under bf16 autocast, for reference: what a Seq2SeqTrainer checkpoint (saved in
    fp32) gives. One model on the device at a time, so each side's peak memory is its own."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    new, length, batch = shape["new_tokens"], shape["decode_source"], args.decode_batch
    sources = decode_sources(shape, args)
    texts, bf16 = [text(s) for s in sources], precision == "bf16"
    sides = {"ours": (dtype, lambda model, items: decode_ours(model, items, shape, args), texts),
             "baseline": (dtype, lambda model, rows: decode_generate(model, rows, shape, args, device, bf16), sources)}
    if bf16:
        sides["baseline_fp32_weights"] = (torch.float32, sides["baseline"][1], sources)
    figures, outputs = {}, {}
    decode_flops = step_flops(template, len(sources) * length, len(sources) * new, per_token=2)[0]
    for name, (weights, run, items) in sides.items():
        reset_memory(device)
        model = copy.deepcopy(template).to(device=device, dtype=weights).eval()
        model.generation_config.min_new_tokens = new  # every sequence gets exactly `new` tokens, on every side
        if name == "ours":
            modeling.use_attention(model, args.speed["decode_attention"])  # as decode.main's load_model
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
        start = sync(device)
        run(model, items[:batch])  # ours compiles here (static cache on CUDA)
        warmup = sync(device) - start
        reset_memory(device)
        start = sync(device)
        outputs[name] = run(model, items)
        seconds = sync(device) - start
        tflops = decode_flops / seconds / 1e12
        figures[name] = {"new_tokens_per_s": len(items) * new / seconds, "sequences_per_s": len(items) / seconds,
                         "seconds": seconds, "tflops": tflops,
                         "utilisation": tflops / args.peak_tflops if args.peak_tflops else None,
                         "peak_memory_bytes": peak_memory(device), "warmup_s": warmup}
        if name == "ours":
            figures[name]["compile"] = (modeling.compile_counts() if modeling.wanted(args.speed["static_cache"], device)
                                        else None)
            if args.profile:
                figures[name]["profile"] = profile(lambda: run(model, items[:batch]), device)
            torch._dynamo.reset()  # frees our CUDA graphs' memory pool, which the baselines' peaks must not hold
        del model
    reference = copy.deepcopy(template).to(device).eval()  # fp32: judges where two outputs part
    found = {name: agreement.compare(reference, sources, outputs["ours"], theirs, device)
             for name, theirs in outputs.items() if name != "ours"}
    if bf16:  # what bf16 weights alone change, whoever decodes
        found["bf16_weights_vs_fp32_weights"] = agreement.compare(reference, sources, outputs["baseline"],
                                                                  outputs["baseline_fp32_weights"], device)
    del reference
    ratio = {"new_tokens_per_s": figures["ours"]["new_tokens_per_s"] / figures["baseline"]["new_tokens_per_s"]}
    if bf16:
        ratio["new_tokens_per_s_vs_fp32_weights"] = (figures["ours"]["new_tokens_per_s"] /
                                                     figures["baseline_fp32_weights"]["new_tokens_per_s"])
    return {"dtype": str(dtype), "sequences": len(sources), "batch": batch, "source_tokens": length,
            "new_tokens": new, "flops": decode_flops, **figures,
            "identical_share": found["baseline"]["identical_share"], "agreement": found, "ratio": ratio}


def profile(work, device, rows: int = 15) -> dict:
    """Where one more batch's time goes (--profile): the operations with the most device time of their own, and
    those with the most host time, children included (a host waiting on the device shows as a synchronize)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profiler(activities=activities) as prof:
        start = sync(device)
        work()
        seconds = sync(device) - start
    events = prof.key_averages()

    def top(key):
        ranked = sorted(events, key=lambda event: getattr(event, key), reverse=True)[:rows]
        return [{"name": event.key[:120], "calls": event.count, "ms": getattr(event, key) / 1000} for event in ranked]
    return {"seconds": seconds, "device_self_ms": top("self_device_time_total"), "host_total_ms": top("cpu_time_total")}


def fp32_check_section(template, shape, args, device) -> dict:
    """One batch decoded by both sides on fp32 weights, no autocast, where greedy outputs must be identical (on
    CUDA ours is the compiled static-cache step, whose kernels sum in another order than generate's: a
    difference at a logit gap far below the usual top-2 gap is such a tie, not other math)."""
    sources = decode_sources(shape, args)[:args.decode_batch]
    reference = copy.deepcopy(template).to(device).eval()  # generate's, and agreement's teacher-forced reference
    reference.generation_config.min_new_tokens = shape["new_tokens"]
    ours_fp32 = copy.deepcopy(reference)
    modeling.use_attention(ours_fp32, args.speed["decode_attention"])
    torch._dynamo.reset()
    ours = decode_ours(ours_fp32, [text(s) for s in sources], shape, args)
    baseline = decode_generate(reference, sources, shape, args, device, autocast=False)
    return agreement.compare(reference, sources, ours, baseline, device)


def xlrs_section(template, shape, args, device, work: Path):
    """Save a bf16 checkpoint (its size is the checkpoint figure), then time load_model + xlrs_rows."""
    tokenizer, checkpoint = IdTokenizer(), work / "checkpoint"
    weights = copy.deepcopy(template)
    saving = time.perf_counter()
    modeling.save_model(weights, tokenizer, checkpoint, dtype=torch.bfloat16)
    save_seconds = time.perf_counter() - saving
    del weights
    size = sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))
    params = sum(p.numel() for p in template.parameters())
    rng = random.Random(args.seed + 2)
    parallel = {lang: [text(s) for s in synthetic(rng, shape["xlrs_sentences"], shape["xlrs_length"],
                                                  shape["model"]["vocab_size"])] for lang in LANGUAGES}
    reset_memory(device)
    start = sync(device)
    model = modeling.load_model(str(checkpoint), device=device, attention=args.speed["attention"]).eval()
    loaded = sync(device)
    parallel_ids = xlrs.tokenize_parallel(tokenizer, parallel, XLRS_MAX_LENGTH)  # as a job does, once
    rows = xlrs.xlrs_rows(model, tokenizer.pad_token_id, parallel_ids, LANGUAGES[:1], LANGUAGES[1:], 0, XLRS_BATCH,
                          XLRS_MAX_LENGTH)
    end = sync(device)
    # What a workflow job pays besides its compute (workflow_scripts.estimate): its start, and each further
    # checkpoint of the run, loaded into the model it has: whole (decode), or only its encoder (XLRS).
    modeling.load_weights_into(model, str(checkpoint))
    reloaded = sync(device)
    modeling.load_weights_into(model, str(checkpoint), only=model.get_encoder())
    encoder_reloaded = sync(device)
    low, high = TARGETS["checkpoint_bytes_per_parameter"]
    sentences = shape["xlrs_sentences"] * len(LANGUAGES)
    tokens = sum(min(len(t.split()), XLRS_MAX_LENGTH) for texts in parallel.values() for t in texts)
    return ({"sentences": shape["xlrs_sentences"], "languages": len(LANGUAGES), "batch_size": XLRS_BATCH,
             "max_length": XLRS_MAX_LENGTH, "seconds": end - start, "load_seconds": loaded - start,
             "encoded_sentences_per_s": sentences / (end - loaded), "encoded_tokens_per_s": tokens / (end - loaded),
             "next_checkpoint_load_seconds": reloaded - end, "next_encoder_load_seconds": encoder_reloaded - reloaded,
             "checkpoint_save_seconds": save_seconds,
             "job_start_seconds": job_start_seconds(device),
             "rows": len(rows), "peak_memory_bytes": peak_memory(device),
             "note": "the checkpoint was just written, so it is read from the page cache; its save is timed to the "
                     "page cache as well"},
            {"bytes": size, "parameters": params, "bytes_per_parameter": size / params,
             "pass": low <= size / params <= high})


def job_start_seconds(device) -> float | None:
    """A GPU stage's start before its first load, in a new process as each workflow job pays it: the interpreter,
    torch, transformers and accelerate, and the device's context. None (the estimate keeps its anchor) where the
    child fails, e.g. on a GPU in exclusive-process mode: that must not cost the section's other figures."""
    code = ("import torch, transformers, accelerate; from workflow_scripts import decode, modeling, xlrs; "
            f"torch.ones(1, device={device.type!r}).sum().item()")
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if child.returncode:
        print(f"a workflow job's start not timed: the child process failed\n{child.stderr[-2000:]}", file=sys.stderr)
        return None
    return time.perf_counter() - start


def targets_met(record: dict, precision: str, apply: bool) -> dict:
    """Pass or fail per target; None where its section did not run (or, fp32_check, after an fp32 run)."""
    f, d, m = record.get("finetune"), record.get("decode"), record.get("math")
    x, c = record.get("xlrs"), record.get("checkpoint")
    fp32_check = record.get("fp32_check")
    return {"apply": apply,
            "finetune_speed": f and f["ratio"]["samples_per_s"] >= TARGETS["finetune_speedup"],
            "finetune_memory": (None if not f or f["ratio"]["peak_memory"] is None else
                                f["ratio"]["peak_memory"] <= TARGETS["finetune_memory_ratio"]),
            "decode_speed": d and d["ratio"]["new_tokens_per_s"] >= TARGETS["decode_speedup"],
            "decode_identical": d and d["identical_share"] >= TARGETS["decode_identical"][precision],
            "decode_identical_fp32": (fp32_check
                                      and fp32_check["identical_share"] >= TARGETS["decode_identical"]["fp32"]),
            "math": m and m["first_loss"]["pass"] and m["curve"]["pass"],
            "xlrs": x and x["seconds"] < TARGETS["xlrs_seconds"], "checkpoint": c and c["pass"]}


def table(record: dict) -> str:
    t = record["targets"]
    gib = lambda b: f"{b / 2**30:.1f} GiB" if b else "n/a"  # noqa: E731
    pct = lambda u: f"{100 * u:.1f}%" if u else "n/a"  # noqa: E731
    compiled = lambda c: f"{c['graphs']} / {c['failed_frames']}" if c else "not compiled"  # noqa: E731

    def gaps(found):
        at, usual = found["gap_at_first_difference"], found["top2_gap"]
        steps = found.get("bf16_steps_at_first_difference")  # records written before it existed lack it
        if not at:
            return "no differences"
        return f"{at['median']:.3g} ({usual['median']:.3g})" + (f", {steps['median']:.2g} bf16 steps" if steps else "")
    rows = []
    if "finetune" in record:
        f, m = record["finetune"], record["math"]
        rows += [("fine-tune samples/s", f"{f['ours']['samples_per_s']:.1f}", f"{f['baseline']['samples_per_s']:.1f}",
                  f"{f['ratio']['samples_per_s']:.2f}x", ">= 3x", t["finetune_speed"]),
                 ("fine-tune peak memory", gib(f["ours"]["peak_memory_bytes"]),
                  gib(f["baseline"]["peak_memory_bytes"]), "", "<= baseline", t["finetune_memory"]),
                 ("FLOP utilisation", pct(f["ours"]["utilisation"]), pct(f["baseline"]["utilisation"]), "", "", ""),
                 ("first step (ours: incl. compiling)", f"{f['ours']['first_step_s']:.1f} s",
                  f"{f['baseline']['first_step_s']:.1f} s", "", "", ""),
                 ("fine-tune: host time padding a batch (ours)", f"{1000 * f['ours']['collate_s_per_step']:.1f} ms",
                  "", "", "", ""),
                 ("fine-tune: torch.compile graphs / failed frames (ours)", compiled(f["ours"]["compile"]),
                  "", "", "", ""),
                 ("loss rel. diff: first / max over curve", f"{m['first_loss']['relative_difference']:.1e}",
                  f"{m['curve']['max_relative_difference']:.1e}", "",
                  "{first:.0e} / {curve:.0e}".format(**m["tolerance_relative"]), t["math"])]
    if "decode" in record:
        d = record["decode"]
        rows += [("decode new tokens/s", f"{d['ours']['new_tokens_per_s']:.0f}",
                  f"{d['baseline']['new_tokens_per_s']:.0f}", f"{d['ratio']['new_tokens_per_s']:.2f}x", ">= 3x",
                  t["decode_speed"]),
                 ("decode FLOP utilisation", pct(d["ours"]["utilisation"]), pct(d["baseline"]["utilisation"]), "",
                  "", ""),
                 *([("decode vs generate on fp32 weights (a Seq2SeqTrainer checkpoint's)", "",
                     f"{d['baseline_fp32_weights']['new_tokens_per_s']:.0f}",
                     f"{d['ratio']['new_tokens_per_s_vs_fp32_weights']:.2f}x", "", "")]
                   if "baseline_fp32_weights" in d else []),
                 ("decode warm-up batch (ours: incl. compiling)", f"{d['ours']['warmup_s']:.1f} s",
                  f"{d['baseline']['warmup_s']:.1f} s", "", "", ""),
                 ("decode: torch.compile graphs / failed frames (ours)", compiled(d["ours"]["compile"]),
                  "", "", "", ""),
                 (f"greedy outputs identical ({record['precision']})", f"{100 * d['identical_share']:.1f}%", "", "",
                  f">= {100 * TARGETS['decode_identical'][record['precision']]:.0f}%", t["decode_identical"]),
                 ("where they differ: fp32 logit gap of the two tokens, median (usual top-2 gap), in bf16 steps",
                  gaps(d["agreement"]["baseline"]), "", "", "", "")]
        for key, what in (("baseline_fp32_weights", "ours vs generate on fp32 weights"),
                          ("bf16_weights_vs_fp32_weights", "generate on bf16 vs on fp32 weights")):
            if key in d["agreement"]:
                found = d["agreement"][key]
                rows.append((f"greedy outputs identical, {what}; logit gap where they differ (usual), bf16 steps",
                             f"{100 * found['identical_share']:.1f}%; {gaps(found)}", "", "", "", ""))
    if "fp32_check" in record:
        rows.append(("greedy outputs identical (fp32 check, one batch)",
                     f"{100 * record['fp32_check']['identical_share']:.1f}%; {gaps(record['fp32_check'])}", "", "",
                     "100%", t["decode_identical_fp32"]))
    if "xlrs" in record:
        x = record["xlrs"]
        rows += [(f"XLRS {x['languages']} x {x['sentences']} incl. load", f"{x['seconds']:.2f} s", "", "", "< 10 s",
                  t["xlrs"]),
                 ("a workflow job's start; each further checkpoint's load, whole and its encoder only",
                  ("n/a" if x["job_start_seconds"] is None else f"{x['job_start_seconds']:.2f} s")
                  + f"; {x['next_checkpoint_load_seconds']:.2f} s, "
                  f"{x['next_encoder_load_seconds']:.2f} s", "", "", "", ""),
                 ("checkpoint, bf16 safetensors", f"{record['checkpoint']['bytes'] / 1e9:.4f} GB", "", "",
                  "2 B/param (1.16 GB)", t["checkpoint"])]
    return "\n".join(["| figure | ours | baseline | ratio | target | pass |", "|---|---|---|---|---|---|"] +
                     ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="mt5-base")
    p.add_argument("--steps", type=int, help="timed fine-tuning steps (default 50 mt5-base, 20 tiny)")
    p.add_argument("--warmup", type=int, help="untimed steps first, >= 1 (default 5 / 2); losses: warmup + steps")
    p.add_argument("--decode-batch", type=int, help="sequences per generate call (default 256 / 16)")
    p.add_argument("--decode-batches", type=int, default=2, help="timed decode batches (default 2)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    p.add_argument("--peak-tflops", type=float, help="bf16 dense peak (default by device name: H100 989, H200 790)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="auto: bf16 on CUDA, fp32 on a CPU (bf16 on a CPU runs the GPU's bf16 code paths, slowly)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout_rate (0: the loss comparison needs it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed", type=json.loads, default={},
                   help="JSON object overriding the product's speed settings for our side, e.g. "
                        "'{\"compile\": false}' (defaults: workflow_scripts.modeling.SPEED_DEFAULTS)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="what to time (default all): after a change to one stage, its section alone")
    p.add_argument("--profile", action="store_true",
                   help="profile one more decode batch of ours (torch.profiler): the record's decode.ours.profile")
    p.add_argument("--out", type=Path, default=Path("benchmarks/record.json"))
    args = p.parse_args(argv)
    shape = SHAPES[args.shape]
    args.steps = args.steps or shape["steps"]
    args.warmup = max(1, shape["warmup"] if args.warmup is None else args.warmup)
    args.decode_batch = args.decode_batch or shape["decode_batch"]
    args.speed = modeling.speed_settings(args.speed)
    return args


@contextlib.contextmanager
def cold_compile_cache():
    """torch.compile's cache empty at the start, so that first_step_s and warmup_s are cold compiles (the cost
    estimate's figure), not whatever an earlier run left in torch's default cache on this machine; a cache the
    caller names (COMPILE_CACHE_VARIABLE) is used as it is. Yields that cache, or None for an empty one."""
    given = os.environ.get(COMPILE_CACHE_VARIABLE)
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bench-compile-cache-") as empty:
        os.environ[COMPILE_CACHE_VARIABLE] = empty
        try:
            yield None
        finally:
            del os.environ[COMPILE_CACHE_VARIABLE]


def main(argv: list[str] | None = None) -> dict:
    with cold_compile_cache() as compile_cache:
        return benchmark(parse_args(argv), compile_cache, argv)


def benchmark(args, compile_cache: str | None, argv: list[str] | None) -> dict:
    import accelerate
    import transformers

    shape, device = SHAPES[args.shape], torch.device(args.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # the Accelerator and the Trainer train on the current device, not cuda:N
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"cpu {platform.processor() or platform.machine()}")
    if args.peak_tflops is None and device.type == "cuda":
        args.peak_tflops = next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)
    precision = args.precision if args.precision != "auto" else "bf16" if device.type == "cuda" else "fp32"
    if args.shape == "tiny":  # tiny matrices gain nothing from threads, and on a busy CPU threads spin-wait
        torch.set_num_threads(1)
    started = time.perf_counter()

    def progress(what):  # a run cut short by a time limit still says how far it got
        print(f"[{time.perf_counter() - started:6.1f} s] {what}", flush=True)

    anchors = Path(__file__).with_name("anchors.json")
    template = build_model(shape, args.seed, args.dropout)  # on the CPU; every section starts from a copy
    record = {"record_version": RECORD_VERSION, "device": name,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": shlex.join([sys.executable, "-m", "benchmarks.bench",
                                     *(sys.argv[1:] if argv is None else argv)]),
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "accelerate": accelerate.__version__, "python": platform.python_version(),
                           "cpu_threads": torch.get_num_threads()},
              "shape": {"name": args.shape, **shape["model"], "dropout_rate": args.dropout, "seed": args.seed,
                        "parameters": sum(parameter.numel() for parameter in template.parameters())},
              "precision": precision,
              "speed": {"settings": args.speed, "compiled": modeling.wanted(args.speed["compile"], device),
                        "static_cache_used": modeling.wanted(args.speed["static_cache"], device),
                        "compile_cache": compile_cache or "empty at the start: cold compiles"},
              "sections": args.sections, "complete": False, "target_values": TARGETS,
              "anchors": json.loads(anchors.read_text()) if anchors.exists() else None}

    def save(**sections):  # after each section: a run cut short by a time limit keeps what it measured
        record.update(sections)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")

    def measure(section, run, done):
        """A section that fails is recorded with its error and the next one still runs: on a lent GPU, one
        failure (say, in compiled decoding) must not cost the figures of the others."""
        try:
            figures = run()
        except Exception as error:  # noqa: BLE001 -- any failure: record it, keep the other sections
            traceback.print_exc()
            record.setdefault("errors", {})[section] = f"{type(error).__name__}: {error}"[:2000]
            save()
            progress(f"{section} FAILED ({type(error).__name__}); going on with the next section")
            torch._dynamo.reset()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return
        save(**figures)
        progress(done(figures))

    def xlrs_and_checkpoint():
        with tempfile.TemporaryDirectory() as work:
            figures, checkpoint = xlrs_section(template, shape, args, device, Path(work))
        return {"xlrs": figures, "checkpoint": checkpoint}

    def finetuning():
        figures, math = finetune_section(template, shape, args, device, precision)
        return {"finetune": figures, "math": math}

    progress(f"built the {args.shape} model; timing {', '.join(args.sections)}")
    if "xlrs" in args.sections:
        measure("xlrs", xlrs_and_checkpoint, lambda r: f"XLRS ({r['xlrs']['seconds']:.1f} s) and the checkpoint done")
    if "finetune" in args.sections:
        measure("finetune", finetuning, lambda r: f"fine-tuning done ({r['finetune']['ratio']['samples_per_s']:.2f}x; "
                f"torch.compile: {r['finetune']['ours']['compile']})")
    if "decode" in args.sections:
        measure("decode", lambda: {"decode": decode_section(template, shape, args, device, precision)},
                lambda r: f"decoding done ({r['decode']['ratio']['new_tokens_per_s']:.2f}x; "
                f"torch.compile: {r['decode']['ours']['compile']})")
    if "fp32_check" in args.sections and precision == "bf16":
        measure("fp32_check", lambda: {"fp32_check": fp32_check_section(template, shape, args, device)},
                lambda r: f"fp32 check done ({100 * r['fp32_check']['identical_share']:.1f}% identical)")
    save(targets=targets_met(record, precision, args.shape == "mt5-base" and device.type == "cuda"),
         complete="errors" not in record)
    print(f"{name}, {args.shape}, {precision}; record written to {args.out}\n\n{table(record)}")
    found = record.get("decode", {}).get("ours", {}).get("profile")
    if found:
        print(f"\nprofile of one decode batch of ours ({found['seconds']:.3f} s), most device time:")
        print("\n".join(f"  {op['ms']:9.1f} ms {op['calls']:6d} x {op['name']}" for op in found["device_self_ms"][:8]))
    for section, error in record.get("errors", {}).items():
        print(f"\n{section} failed: {error}")
    return record


if __name__ == "__main__":
    sys.exit(1 if "errors" in main() else 0)
