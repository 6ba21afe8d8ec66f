"""Stage 3, finetune: one run = (task, source-language combination, seed).

A plain training loop on `accelerate` (CPU or one GPU; runs go side by side, one per GPU): AdamW, its learning
rate decayed linearly to 0 (Seq2SeqTrainer's default) or constant (train.lr_schedule), bf16 autocast on CUDA
and fp32 on CPU, gradient accumulation when micro_batch_size < batch_size, K evenly spaced checkpoints saved
as safetensors with their tokenizer.
At each checkpoint, and on SIGTERM/SIGUSR1/SIGINT, the state to resume from (weights, optimizer, step, RNG)
goes to resume/state.pt (newest only); a restarted job continues from it and ends bit-identical (CPU).
Checkpoints and resume/ are not Snakemake outputs, so an interrupted job's work survives its cleanup;
run.json, written last, marks the run complete.
A k-source run takes the first n_train // k training examples of each source (the same total as a
one-source run) and shuffles them with the run's seed.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import math
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from workflow_scripts import cli, tasks
from workflow_scripts.errors import UserError
from workflow_scripts.files import DataError, checkpoint_path, read_jsonl, write_json, write_tsv

log = logging.getLogger("finetune")
# Non-zero, so that Snakemake and SLURM treat a stopped job as unfinished and run (or requeue) it again.
EXIT_STOPPED = 75
LOG_COLUMNS = ("step", "epoch", "loss", "learning_rate")  # of train_log.tsv


def training_examples(spec: dict, train_files: dict[str, Path]) -> tuple[list[dict], dict, list[str]]:
    """The run's training pairs, shuffled with its seed; the count per source; warnings."""
    per_source = spec["train"]["n_train"] // len(spec["sources"])
    examples, counts, warnings = [], {}, []
    missing = [lang for lang in spec["sources"] if lang not in train_files]
    if missing:
        raise DataError(f"no training data given for source {missing[0]!r} (--data {missing[0]}=FILE)")
    for lang in spec["sources"]:
        records = read_jsonl(train_files[lang], required=("id", "input", "target"))
        taken = records[:per_source]
        if len(taken) < per_source:
            warn(warnings, f"source {lang!r}: only {len(taken)} training examples of the {per_source} asked for; "
                           "using all of them")
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


def encode_pairs(tokenizer, examples: list[dict], params: dict,
                 tail: str = "") -> tuple[list[tuple[list[int], list[int]]], dict[str, int]]:
    """Every (input, target) tokenized once and cut to the maximum lengths (an input keeping its template's
    `tail`): a step then only pads. Also how many inputs and targets were cut."""
    from workflow_scripts.modeling import tokenize

    sources, cut_inputs = tokenize(tokenizer, [e["input"] for e in examples], params["max_source_length"], tail)
    targets, cut_targets = tokenize(tokenizer, [e["target"] for e in examples], params["max_target_length"])
    return list(zip(sources, targets)), {"inputs": cut_inputs, "targets": cut_targets}


def collate(pairs: list[tuple[list[int], list[int]]], pad_id: int, params: dict,
            buckets: tuple[int, int] = (1, 1)) -> dict:
    """Model inputs of encoded pairs, padded to multiples of the (source, target) length buckets; padded labels
    are -100."""
    from workflow_scripts.modeling import pad_rows, padded_length

    sources, targets = zip(*pairs)
    source_length = padded_length(max(map(len, sources)), buckets[0], params["max_source_length"])
    target_length = padded_length(max(map(len, targets)), buckets[1], params["max_target_length"])
    input_ids, attention_mask = pad_rows(sources, pad_id, source_length)
    labels, label_mask = pad_rows(targets, pad_id, target_length)
    labels[label_mask == 0] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class Stop(Exception):
    """Raised at a step boundary after SIGTERM/SIGUSR1/SIGINT, once the resumable state is saved."""


def install_stop_handlers() -> dict:
    """SIGTERM/SIGUSR1 (a cluster's notice before the time limit or preemption) and SIGINT (Ctrl-C, which Snakemake
    also receives and then waits for its jobs) set a flag checked per step."""
    flag = {"signal": None}

    def handler(signum, frame):
        flag["signal"] = signum
        if signum == signal.SIGINT:  # a second Ctrl-C stops at once, as it did before
            signal.signal(signal.SIGINT, signal.default_int_handler)

    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a job started to ignore it keeps ignoring it
            signal.signal(signum, handler)
    return flag


def save_state(path: Path, model, optimizer, step: int, log_rows: list[dict]) -> None:
    """Everything a restarted job needs to continue bit-identically; only the newest is kept."""
    import torch

    from workflow_scripts.files import atomic_path, full_disk_named

    state = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "torch_rng": torch.get_rng_state(), "log": log_rows,
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    with atomic_path(path) as tmp, full_disk_named(path):  # measured while the partial file still takes its space
        torch.save(state, tmp)


def load_state(path: Path, model, optimizer) -> tuple[int, list[dict]]:
    import torch

    try:  # written atomically, so only a damaged disk or a hand copy leaves it unreadable
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except Exception as err:  # what torch.load raises differs with the damage: a zip's, unpickling's, a key's
        raise DataError(f"{path}: this run's resume state cannot be read ({str(err).splitlines()[0]}); delete it "
                        "to train the run again from its start") from err
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    log.info("resumed from %s at step %d", path, state["step"])
    return state["step"], state["log"]


def model_loss(model, inputs: dict):
    """The model's mean loss over the batch's target tokens. Compiled, only this scalar leaves the graph: the
    logits over the 250k vocabulary stay bf16 inside it, and the fp32 copy accelerate makes of every output
    is never computed (tests/test_speed.py reads the generated code). No KV cache: training never reads it, and
    building one (a copy.deepcopy of the config) breaks the compiled graph on torch 2.11."""
    return model(**inputs, use_cache=False).loss


@dataclass
class Training:
    """What train_step needs, as setup_training prepares it."""
    accelerator: Any
    model: Any
    optimizer: Any
    loss: Callable  # model_loss, compiled or not
    buckets: tuple[int, int]  # (source, target) length buckets batches are padded to

    @property
    def compiled(self) -> bool:
        return self.loss is not model_loss


def setup_training(model, params: dict, speed: dict, device=None, mixed_precision: str | None = None) -> Training:
    """The Accelerator, prepared model and optimizer, as every run (and benchmarks/bench.py) trains them:
    bf16 autocast on CUDA (mT5 overflows in fp16), fp32 on CPU unless `mixed_precision` says otherwise."""
    import torch
    from accelerate import Accelerator

    from workflow_scripts.modeling import before_compiling, resolve_device, use_attention, wanted

    device = torch.device(device) if device is not None else resolve_device()
    accelerator = Accelerator(mixed_precision=mixed_precision or ("bf16" if device.type == "cuda" else "no"),
                              cpu=device.type == "cpu")
    if accelerator.num_processes > 1:  # batches are not sharded: each process would train and save the same run
        raise UserError(f"finetune trains a run in one process on one device, not under `accelerate launch` with "
                         f"{accelerator.num_processes} processes; the workflow runs several runs side by side instead "
                         "(--resources gpu=N, or one SLURM job each)")
    use_attention(model, speed["attention"])
    model = model.to(accelerator.device)
    # The fused CUDA kernel updates all parameters in one launch; CPU keeps the reference implementation.
    optimizer = torch.optim.AdamW(parameter_groups(model, params["weight_decay"]), lr=params["learning_rate"],
                                  fused=accelerator.device.type == "cuda")
    model, optimizer = accelerator.prepare(model, optimizer)
    if not wanted(speed["compile"], accelerator.device):
        # Uncompiled, padding to buckets would only be wasted work.
        return Training(accelerator, model, optimizer, model_loss, (1, 1))
    import torch._dynamo

    # One graph per length bucket and micro-batch size: the limit is raised so that no bucket runs uncompiled.
    lengths = [-(-params[f"max_{side}_length"] // speed[f"{side}_bucket"]) for side in ("source", "target")]
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * lengths[0] * lengths[1])
    before_compiling()
    torch._dynamo.utils.counters.clear()  # modeling.compile_counts() counts this training's graphs
    return Training(accelerator, model, optimizer, torch.compile(model_loss, dynamic=False),
                    (speed["source_bucket"], speed["target_bucket"]))


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups: with weight decay, Seq2SeqTrainer's (no decay for biases, the relative position
    bias and the norms' scales, by the Trainer's own rule); without it, one group."""
    if not weight_decay:
        return [{"params": list(model.parameters()), "weight_decay": 0.0}]
    from transformers import Trainer

    decayed = set(Trainer.get_decay_parameter_names(None, model))  # a method that never reads its Trainer
    named = list(model.named_parameters())
    return [{"params": [p for name, p in named if name in decayed], "weight_decay": weight_decay},
            {"params": [p for name, p in named if name not in decayed], "weight_decay": 0.0}]


def train_step(training: Training, batch: list[tuple[list[int], list[int]]], pad_id: int, params: dict) -> float:
    """One optimizer step on a batch of encoded pairs, in micro-batches of params["micro_batch_size"], padded
    to the length buckets; returns the batch loss."""
    import torch

    accelerator, model, optimizer = training.accelerator, training.model, training.optimizer
    micro_batches = [batch[i:i + params["micro_batch_size"]] for i in range(0, len(batch), params["micro_batch_size"])]
    target_tokens = sum(len(target) for _, target in batch)
    on_cuda = accelerator.device.type == "cuda"
    losses = []
    for number, micro in enumerate(micro_batches):
        # Pinned host memory lets the copy run asynchronously with the GPU's work.
        inputs = {k: (v.pin_memory() if on_cuda else v).to(accelerator.device, non_blocking=True)
                  for k, v in collate(micro, pad_id, params, training.buckets).items()}
        last = number == len(micro_batches) - 1
        # The model's loss is the mean over a micro-batch's target tokens; weighting each by its share of the
        # batch's tokens makes the summed gradients those of the whole batch at once.
        share = sum(len(target) for _, target in micro) / target_tokens
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            loss = training.loss(model, inputs) * share
            accelerator.backward(loss)
        losses.append(loss.detach())
    # The gradient norm is computed (and clipped to max_grad_norm, if set) before the step's one synchronisation:
    # a non-finite loss or gradient (a bf16 overflow in the backward pass) stops the run before the optimizer can
    # write it into the weights.
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), params["max_grad_norm"] or math.inf)
    batch_loss, grad_norm = torch.stack([torch.stack(losses).sum().float(), grad_norm.float()]).tolist()
    if not (math.isfinite(batch_loss) and math.isfinite(grad_norm)):
        optimizer.zero_grad(set_to_none=True)
        raise FloatingPointError(f"loss is {batch_loss}" if not math.isfinite(batch_loss)
                                 else f"gradient norm is {grad_norm} (loss {batch_loss:.4f})")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return batch_loss


def learning_rate_at(step: int, total_steps: int, params: dict) -> float:
    """The learning rate of the optimizer step after `step` steps: a function of the step alone, as the data's
    position is, so a resumed run needs no scheduler state. linear: transformers' get_scheduler("linear") with
    no warmup, Seq2SeqTrainer's default (tests/test_finetune.py compares the two)."""
    if params["lr_schedule"] == "linear":
        return params["learning_rate"] * (total_steps - step) / total_steps
    return params["learning_rate"]


class ProgressLog:
    """Training's progress as log lines, as nanoGPT prints it: a job's log is a file, where a progress bar would
    be one endless line. A line after the first step (its time includes torch.compile's), at every checkpoint
    and at least every `every` seconds between them, with the mean loss and the training throughput since the
    last; a checkpoint's line says how long saving it took, which the throughput leaves out."""

    def __init__(self, run_id: str, total_steps: int, step: int, every: float = 60.0):
        self.run_id, self.total_steps, self.every = run_id, total_steps, every
        self.first_step, self.last_time = step, time.monotonic()
        self.losses, self.samples = [], 0

    def update(self, step: int, epoch: int, loss: float, samples: int, saved_seconds: float | None = None) -> None:
        """saved_seconds: the time this step's checkpoint took to save, if it saved one."""
        self.losses.append(loss)
        self.samples += samples
        now = time.monotonic()
        first, checkpoint = step == self.first_step + 1, saved_seconds is not None
        if not (first or checkpoint or now - self.last_time >= self.every):
            return
        seconds, steps = max(now - self.last_time - (saved_seconds or 0.0), 1e-6), len(self.losses)
        left = datetime.timedelta(seconds=round((self.total_steps - step) * seconds / steps))
        pace = (f"first step in {seconds:.1f} s" if first
                else f"{self.samples / seconds:.1f} samples/s, about {left} left")
        log.info("run %s: step %d/%d (epoch %d): loss %.4f (mean of %d step%s), %s%s", self.run_id, step,
                 self.total_steps, epoch, sum(self.losses) / steps, steps, "s" * (steps > 1), pace,
                 f"; checkpoint saved in {saved_seconds:.2f} s" if checkpoint else "")
        self.last_time, self.losses, self.samples = now, [], 0


def warn(warnings: list[str], message: str) -> None:
    """A warning in the job's log and in run.json, which outlasts the log."""
    warnings.append(message)
    log.warning(message)


def report_cut(cut: dict[str, int], n_examples: int, params: dict, warnings: list[str]) -> None:
    log.info("%d of %d inputs cut to max_source_length %d (their template's end kept), %d targets to "
             "max_target_length %d", cut["inputs"], n_examples, params["max_source_length"], cut["targets"],
             params["max_target_length"])
    if cut["targets"]:  # the model would learn to stop early, and decoding stops at the same length
        warn(warnings, f"{cut['targets']} of {n_examples} training targets are longer than max_target_length "
                       f"{params['max_target_length']} tokens and were cut; raise train.max_target_length")


def plan_steps(n_examples: int, params: dict, warnings: list[str]) -> tuple[int, int, list[int]]:
    """Optimizer steps per epoch, in all, and the steps that save a checkpoint."""
    steps_per_epoch = math.ceil(n_examples / params["batch_size"])
    total_steps = max(1, math.ceil(steps_per_epoch * params["epochs"]))
    saves = checkpoint_steps(total_steps, params["checkpoints"])
    if len(saves) < params["checkpoints"]:  # one per step at most: the selections then choose among fewer
        warn(warnings, f"{total_steps} training steps hold only {len(saves)} of the {params['checkpoints']} "
                       "checkpoints asked for (train.checkpoints); more examples or epochs give more steps")
    return steps_per_epoch, total_steps, saves


def batch_at(step: int, steps_per_epoch: int, n_examples: int, seed: int, batch_size: int) -> tuple[int, list[int]]:
    """The epoch and example indices of the batch after `step` steps: a function of the step alone, so a resumed
    run sees what an uninterrupted one would have seen."""
    epoch, index = divmod(step, steps_per_epoch)
    return epoch, batch_order(n_examples, seed, epoch)[index * batch_size:(index + 1) * batch_size]


@contextlib.contextmanager
def step_failures_named(run_id: str, step: int, epoch: int, params: dict, out_dir: Path, saves: list[int]):
    """Out of GPU memory: which setting to lower, and what that changes. A non-finite loss or gradient: the last
    good checkpoint, which is kept."""
    from workflow_scripts.modeling import lower_on_out_of_memory

    try:
        with lower_on_out_of_memory(
                f"run {run_id} at step {step + 1}", "train.micro_batch_size", params["micro_batch_size"],
                f" to a divisor of train.batch_size {params['batch_size']}: the same batches, through gradient "
                "accumulation, in a new run (it is in the run's digest)"):
            yield
    except FloatingPointError as err:
        last_good = [s for s in saves if s <= step]
        raise FloatingPointError(
            f"run {run_id}: {err} at step {step + 1} (epoch {epoch}); last good checkpoint: "
            f"{checkpoint_path(out_dir, last_good[-1]) if last_good else 'none'} (kept)") from None


def train(spec: dict, model_ref: str, train_files: dict[str, Path], out_dir: Path, run_id: str,
          speed: dict | None = None, revision: str | None = None) -> dict:
    """Fine-tunes one run, from its resume state where a stopped job left one; returns what run.json records,
    with the per-step losses under "log"."""
    import torch
    from accelerate.utils import set_seed

    from workflow_scripts import modeling

    params = spec["train"]
    examples, counts, warnings = training_examples(spec, train_files)
    if not examples:
        raise DataError(f"run {run_id}: no training examples in {', '.join(spec['sources'])}")
    set_seed(spec["seed"])
    speed = modeling.speed_settings(speed)
    kind = tasks.kind(spec["kind"])
    tokenizer = modeling.load_tokenizer(model_ref, sentinels=kind.sentinels, revision=revision)
    encoded, cut = encode_pairs(tokenizer, examples, params, kind.tail)
    report_cut(cut, len(examples), params, warnings)

    base_model = modeling.load_model(model_ref, device=torch.device("cpu"), revision=revision)
    modeling.check_vocabulary(tokenizer, base_model, model_ref)
    training = setup_training(base_model, params, speed)
    accelerator, model, optimizer = training.accelerator, training.model, training.optimizer
    steps_per_epoch, total_steps, saves = plan_steps(len(examples), params, warnings)

    state_path = out_dir / "resume" / "state.pt"
    step, log_rows = 0, []
    if state_path.exists():
        step, log_rows = load_state(state_path, accelerator.unwrap_model(model), optimizer)
    stop = install_stop_handlers()
    started, first_step = time.time(), step
    model.train()
    progress = ProgressLog(run_id, total_steps, step) if accelerator.is_main_process else None
    save_dtype = torch.bfloat16 if accelerator.mixed_precision == "bf16" else None
    while step < total_steps:
        epoch, batch_ids = batch_at(step, steps_per_epoch, len(examples), spec["seed"], params["batch_size"])
        learning_rate = learning_rate_at(step, total_steps, params)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        with step_failures_named(run_id, step, epoch, params, out_dir, saves):
            batch_loss = train_step(training, [encoded[i] for i in batch_ids], tokenizer.pad_token_id, params)
        step += 1
        if step == first_step + 1 and training.compiled:
            modeling.check_compiled(f"run {run_id}: the training step", "compile")
        log_rows.append(dict(zip(LOG_COLUMNS, (step, epoch, batch_loss, learning_rate))))
        saving = time.monotonic()
        if step in saves:
            modeling.save_model(accelerator.unwrap_model(model), tokenizer,
                                checkpoint_path(out_dir, step, saved=False), dtype=save_dtype)
        if (step in saves or stop["signal"]) and step < total_steps:
            save_state(state_path, accelerator.unwrap_model(model), optimizer, step, log_rows)
        if progress:
            progress.update(step, epoch, batch_loss, len(batch_ids),
                            saved_seconds=time.monotonic() - saving if step in saves else None)
        if stop["signal"] and step < total_steps:
            raise Stop(f"run {run_id}: stopped by signal {stop['signal']} at step {step}; "
                       f"state saved to {state_path}, a restarted job resumes from it")
    log.info("run %s: %d steps in %.1f s on %s", run_id, total_steps, time.time() - started, accelerator.device)
    # No timings here: run.json is an input of later stages and must be the same on every rerun.
    return {"spec": spec, "run": run_id, "examples_per_source": counts, "warnings": warnings,
            "cut_to_max_length": cut, "total_steps": total_steps, "checkpoints": saves,
            "device": accelerator.device.type,
            "model_type": accelerator.unwrap_model(model).config.model_type,
            "mixed_precision": accelerator.mixed_precision, "speed": speed, "log": log_rows}


FINISHED = ".finished.json"  # beside run.json, which Snakemake deletes before it runs a job again


def finished_before(out_dir: Path, spec: dict, run_id: str) -> dict | None:
    """What a finished run of `spec` returned (run.json and its log), when it finished here before and every
    checkpoint it saved is still there. Snakemake runs a finished job again when it could not record its end (a
    Snakemake stopped by a SIGINT of its own, or killed, while the job ran on), deleting run.json first: the run
    is not trained again for that."""
    from workflow_scripts.files import read_json

    path = out_dir / FINISHED
    if not path.exists():
        return None
    try:
        result = read_json(path)
        saved = [checkpoint_path(out_dir, step, saved=False) for step in result["checkpoints"]]
        found = result["spec"] == spec and all(list(p.glob("*.safetensors")) for p in saved) and "log" in result
    except (DataError, KeyError, TypeError) as err:
        log.warning("%s: not a finished run's record (%s); training the run again", path, err)
        return None
    if not found:
        log.warning("%s: another spec, or a checkpoint of the finished run is gone; training the run again", path)
        return None
    log.info("run %s finished before (%s, its %d checkpoints all there): run.json and train_log.tsv written "
             "again, nothing trained; delete %s to train the run again", run_id, path, len(saved), out_dir)
    return result


@contextlib.contextmanager
def one_trainer(out_dir: Path, run_id: str):
    """The run's directory for this process alone while it trains. A second job on it (Snakemake killed on its
    own leaves its fine-tuning running; --unlock and a rerun start the run again) would write the same checkpoints
    and resume state; it stops here, naming the process that trains. The kernel releases the lock when that
    process ends, however it ends."""
    import fcntl
    import os
    import socket

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ".finetune.lock"
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"run {run_id}: {out_dir} is being trained by {holder} ({path} is locked), left "
                            "running by a Snakemake that was killed? Wait for it to end, or stop it (kill -TERM "
                            "saves its state), then run the workflow again") from None
        except OSError as err:  # a file system without locks: train unguarded, as before
            log.warning("%s: cannot lock (%s); nothing stops a second job from training this run at once", path,
                        err.strerror)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield


def main() -> None:
    import pandas as pd

    p = cli.parser(__doc__)
    p.add_argument("--run-id", required=True, help="the run's name, for its log lines and run.json")
    cli.add_model(p, "the model to fine-tune")
    p.add_argument("--data", nargs="+", required=True, type=cli.language_and_path, metavar="LANG=FILE",
                   help="the cast training split (JSONL) of each source")
    p.add_argument("--out-dir", type=Path, required=True,
                   help="the run's directory: checkpoints/, resume/, train_log.tsv and, last, run.json")
    cli.add_speed(p)
    args = p.parse_args()
    train_files = {lang: Path(path) for lang, path in args.data}
    with one_trainer(args.out_dir, args.run_id):
        result = finished_before(args.out_dir, args.spec, args.run_id)
        if result is None:
            try:
                result = train(args.spec, args.model, train_files, args.out_dir, args.run_id, args.speed,
                               args.model_revision)
            except Stop as stop:
                print(f"stopped: {stop}", file=sys.stderr)
                sys.exit(EXIT_STOPPED)
            write_json(args.out_dir / FINISHED, result)
        # the columns in the order train writes them: a record read back from JSON has its keys sorted
        write_tsv(args.out_dir / "train_log.tsv", pd.DataFrame(result.pop("log"), columns=list(LOG_COLUMNS)))
        write_json(args.out_dir / "run.json", result)
        shutil.rmtree(args.out_dir / "resume", ignore_errors=True)


if __name__ == "__main__":
    cli.run(main)
