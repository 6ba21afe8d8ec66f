"""Stage 3, finetune: one run = (task, source-language combination, seed).

A plain training loop on `accelerate` (CPU, one GPU, or several under `accelerate launch`): AdamW at a
constant learning rate, bf16 autocast on CUDA and fp32 on CPU, gradient accumulation when
micro_batch_size < batch_size, K evenly spaced checkpoints saved as safetensors with their tokenizer.
A k-source run takes the first n_train // k training examples of each source (the same total as a
one-source run) and shuffles them with the run's seed.
"""
from __future__ import annotations

import logging
import math
import random
import sys
import time
from pathlib import Path

from workflow_scripts import cli
from workflow_scripts.files import DataError, read_jsonl, write_json, write_tsv

log = logging.getLogger("finetune")


def training_examples(spec: dict, cast_dirs: dict[str, Path]) -> tuple[list[dict], dict, list[str]]:
    """The run's training pairs, shuffled with its seed; the count per source; warnings."""
    per_source = spec["train"]["n_train"] // len(spec["sources"])
    examples, counts, warnings = [], {}, []
    for lang in spec["sources"]:
        records = read_jsonl(Path(cast_dirs[lang]) / "train.jsonl", required=("id", "input", "target"))
        taken = records[:per_source]
        if len(taken) < per_source:
            warnings.append(f"source {lang!r}: only {len(taken)} training examples of the {per_source} asked for; "
                            "using all of them")
            log.warning(warnings[-1])
        counts[lang] = len(taken)
        examples += [{"input": r["input"], "target": r["target"]} for r in taken]
    random.Random(spec["seed"]).shuffle(examples)
    return examples, counts, warnings


def checkpoint_steps(total_steps: int, k: int) -> list[int]:
    """K evenly spaced optimizer steps ending at the last one."""
    return sorted({max(1, round(total_steps * i / k)) for i in range(1, k + 1)})


def batch_order(n_examples: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a pure function of (seed, epoch), so a resumed run sees the same data."""
    order = list(range(n_examples))
    random.Random(f"{seed}-epoch-{epoch}").shuffle(order)
    return order


def collate(tokenizer, pairs: list[dict], params: dict):
    inputs = tokenizer([p["input"] for p in pairs], max_length=params["max_source_length"], truncation=True,
                       padding=True, return_tensors="pt")
    labels = tokenizer(text_target=[p["target"] for p in pairs], max_length=params["max_target_length"],
                       truncation=True, padding=True, return_tensors="pt")["input_ids"]
    labels[labels == tokenizer.pad_token_id] = -100
    return {**inputs, "labels": labels}


def train(spec: dict, model_ref: str, cast_dirs: dict[str, Path], out_dir: Path, run_id: str) -> dict:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm

    from workflow_scripts import modeling

    params = spec["train"]
    examples, counts, warnings = training_examples(spec, cast_dirs)
    if not examples:
        raise DataError(f"run {run_id}: no training examples in {', '.join(spec['sources'])}")
    accumulation = params["batch_size"] // params["micro_batch_size"]
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no",
                              gradient_accumulation_steps=accumulation, cpu=not torch.cuda.is_available())
    set_seed(spec["seed"])
    tokenizer = modeling.load_tokenizer(model_ref)
    model = modeling.load_model(model_ref, device=accelerator.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params["learning_rate"],
                                  weight_decay=params["weight_decay"])
    model, optimizer = accelerator.prepare(model, optimizer)

    steps_per_epoch = math.ceil(len(examples) / params["batch_size"])
    total_steps = max(1, math.ceil(steps_per_epoch * params["epochs"]))
    saves = checkpoint_steps(total_steps, params["checkpoints"])
    log_rows, step, last_saved = [], 0, None
    started = time.time()
    model.train()
    progress = tqdm(total=total_steps, desc=run_id, file=sys.stderr, disable=not accelerator.is_main_process)
    epoch = 0
    while step < total_steps:
        order = batch_order(len(examples), spec["seed"], epoch)
        micro_batches = [order[i:i + params["micro_batch_size"]]
                         for i in range(0, len(order), params["micro_batch_size"])]
        for index, micro in enumerate(micro_batches):
            batch = {k: v.to(accelerator.device) for k, v in
                     collate(tokenizer, [examples[i] for i in micro], params).items()}
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"run {run_id}: loss is {loss.item()} at step {step + 1} (epoch {epoch}); "
                        f"last good checkpoint: {last_saved or 'none yet'}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and params["max_grad_norm"] > 0:
                    accelerator.clip_grad_norm_(model.parameters(), params["max_grad_norm"])
                optimizer.step()
                optimizer.zero_grad()
            last_of_epoch = index == len(micro_batches) - 1
            if not (accelerator.sync_gradients or last_of_epoch):
                continue
            step += 1
            log_rows.append({"step": step, "epoch": epoch, "loss": loss.item(), "learning_rate": params["learning_rate"]})
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if step in saves:
                last_saved = out_dir / "checkpoints" / f"step-{step:06d}"
                modeling.save_model(accelerator.unwrap_model(model), tokenizer, last_saved,
                                    dtype=torch.bfloat16 if accelerator.mixed_precision == "bf16" else None)
            if step >= total_steps:
                break
        epoch += 1
    progress.close()
    return {"spec": spec, "run": run_id, "examples_per_source": counts, "warnings": warnings,
            "total_steps": total_steps, "checkpoints": saves, "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision, "seconds": round(time.time() - started, 1),
            "log": log_rows}


def main() -> None:
    import pandas as pd

    p = cli.parser(__doc__)
    p.add_argument("--run-id", required=True)
    p.add_argument("--model", required=True, help="directory or hub id for from_pretrained")
    p.add_argument("--data", nargs="+", required=True, metavar="LANG=DIR", help="cast directory of each source")
    p.add_argument("--out-dir", type=Path, required=True)
    args = p.parse_args()
    cast_dirs = dict(item.split("=", 1) for item in args.data)
    result = train(args.spec, args.model, cast_dirs, args.out_dir, args.run_id)
    write_tsv(args.out_dir / "train_log.tsv", pd.DataFrame(result.pop("log")))
    write_json(args.out_dir / "run.json", result)


if __name__ == "__main__":
    cli.run(main)
