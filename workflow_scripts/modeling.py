"""Loading and saving models and tokenizers, always through from_pretrained / save_pretrained.

The same code loads the demo's tiny model from a directory and google/mt5-base from the hub.
mT5's output layer is not tied to its input embeddings. transformers 5.x forces
MT5Config.tie_word_embeddings=True and a later tie_weights() silently ties lm_head to the
embeddings, so every load and save checks that an untied checkpoint stays untied.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from workflow_scripts.cli import COMPILE_CACHE_VARIABLE
from workflow_scripts.errors import UserError
from workflow_scripts.files import TOKENIZER_FILES, full_disk_named

log = logging.getLogger("modeling")
# How fast, not what: without dropout these settings change float rounding at most (with it, the training-side
# ones give another dropout draw, as another device does), so, like the device, they are in no digest. The config
# schema's `speed` section repeats these defaults (tests/test_speed.py).
# attention: fine-tuning and XLRS; decode_attention: decoding, where sdpa (generate's default) keeps our greedy
# outputs token for token generate's on the same bf16 weights on a CPU (on the H200 the compiled static-cache
# step breaks near-ties differently: benchmarks/README.md, "What the bf16 target can reach").
SPEED_DEFAULTS = {"attention": "eager", "decode_attention": "sdpa", "compile": "auto", "static_cache": "auto",
                  "source_bucket": 128, "target_bucket": 32}


class ModelError(UserError):
    """A model or tokenizer that cannot be used; the message names it and says what to do."""


@contextlib.contextmanager
def lower_on_out_of_memory(where: str, key: str, value: int, advice: str = ""):
    """A CUDA out-of-memory error as one line that names the config key to lower."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        detail = (str(err).strip().splitlines() or ["CUDA out of memory"])[0][:200]
        raise ModelError(f"{where}: out of GPU memory at {key} {value} ({detail}); lower {key} in the config"
                         f"{advice}") from None


@functools.cache
def resolve_device() -> torch.device:
    """CUDA when there is one, else the CPU. With several GPUs in view (a workstation: Snakemake's `gpu` resource
    lets N jobs run at once but does not say which GPU is whose), the job takes a GPU no other job holds and
    makes it the current device, so that "cuda" means it. Under SLURM, CUDA_VISIBLE_DEVICES shows each job its
    own GPU only."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
    index = claim_gpu(visible if len(visible) == count else [str(i) for i in range(count)])
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


HELD_GPU_LOCKS = []  # open lock files: a GPU stays this process's until it ends


def claim_gpu(names: list[str], lock_dir: Path | None = None) -> int:
    """The index of the first GPU (by its name in CUDA_VISIBLE_DEVICES, or its number) whose lock file no other
    process of this machine holds; the kernel releases the lock when this process ends, however it ends."""
    import fcntl
    import tempfile

    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "xlgen-gpu-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        handle = open(lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock", "w")  # MIG ids hold '/'
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        HELD_GPU_LOCKS.append(handle)
        log.info("GPU %s (of %d) is this job's", name, len(names))
        return index
    log.warning("all %d GPUs are held by other jobs (is --resources gpu= above the GPU count?): sharing GPU %s",
                len(names), names[0])
    return 0


def speed_settings(given: dict | None = None) -> dict:
    unknown = sorted(set(given or {}) - set(SPEED_DEFAULTS))
    if unknown:
        raise UserError(f"speed: unknown setting {unknown[0]!r} (known: {', '.join(SPEED_DEFAULTS)})")
    return {**SPEED_DEFAULTS, **(given or {})}


def wanted(setting, device: torch.device) -> bool:
    """A speed switch: true, false, or "auto" (on CUDA only: on a CPU compiling costs more than it saves)."""
    return setting is True or (setting == "auto" and device.type == "cuda")


def before_compiling() -> None:
    """A model or torch version that torch.compile fails on runs uncompiled (dynamo logs why) rather than stopping
    the job; check_compiled afterwards says in the job's log what that means. The log also names the cache of
    compiled code that later jobs reuse (the workflow keeps one per study: COMPILE_CACHE_VARIABLE)."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    cache = os.environ.get(COMPILE_CACHE_VARIABLE)
    log.info("torch.compile: compiled code is cached in %s",
             cache or f"torch's default place ({COMPILE_CACHE_VARIABLE} is not set)")


def compile_counts() -> dict:
    """What torch.compile has done in this process: graphs compiled, frames it failed on (which then ran
    uncompiled: dynamo's suppress_errors) and graph breaks. A wanted compile with no graph is a silent slowdown."""
    from torch._dynamo.utils import counters

    return {"graphs": counters["stats"]["unique_graphs"], "failed_frames": counters["frames"]["total"] -
            counters["frames"]["ok"], "graph_breaks": sum(counters["graph_break"].values())}


def check_compiled(what: str, setting: str, expect_graphs: bool = True) -> dict:
    """After compiled work: compile_counts(), and a warning in the job's log when torch.compile failed (or, with
    expect_graphs, compiled nothing), since the work then ran uncompiled (suppress_errors), or when it broke the
    work into several graphs: same results, slower."""
    counts = compile_counts()
    described = ", ".join(f"{key} {value}" for key, value in counts.items())
    if counts["failed_frames"] or (expect_graphs and not counts["graphs"]):
        log.warning("%s: torch.compile did not compile it (%s; dynamo's warnings above say why), so it ran "
                    "uncompiled: the same results, but slower; speed: {%s: false} turns the attempt off",
                    what, described, setting)
    elif counts["graph_breaks"]:  # a torch or transformers version dynamo traces differently
        log.warning("%s: torch.compile compiled it in pieces (%s): the same results, but slower than one graph; "
                    "TORCH_LOGS=graph_breaks names each break", what, described)
    else:
        log.info("%s: torch.compile: %s", what, described)
    return counts


def padded_length(longest: int, multiple: int, cap: int | None) -> int:
    """`longest` rounded up to a multiple of `multiple`, but not beyond `cap`: compiled code then sees a few
    shapes instead of one per batch, and padding is masked, so the result does not change."""
    rounded = -(-longest // multiple) * multiple
    return max(longest, min(rounded, cap)) if cap else rounded


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA (mT5 overflows in fp16), none on CPU (fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def tokenize(tokenizer, texts: list[str], max_length: int, tail: str = "") -> tuple[list[list[int]], int]:
    """Each text's ids cut to max_length, and how many were cut. A cut keeps the text's start and the tokenizer's
    closing special tokens (its own truncation), and also the last tokens that spell `tail` (a template's end
    after its last field, tasks.TaskKind.tail): a long document loses its end, not the prompt. A job tokenizes its
    inputs once, not per checkpoint."""
    rows = tokenizer(texts)["input_ids"]
    kept_end = tokenizer.num_special_tokens_to_add()
    if tail:
        kept_end += len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    kept_end = min(kept_end, max_length)
    too_long = [i for i, row in enumerate(rows) if len(row) > max_length]
    for i in too_long:
        rows[i] = rows[i][:max_length - kept_end] + rows[i][len(rows[i]) - kept_end:]
    return rows, len(too_long)


def length_sorted_batches(rows: list[list[int]], pad_id: int, batch_size: int, max_length: int, device: torch.device,
                          descending: bool = False, bucket: int = 1):
    """(indices, padded batch) of token-id rows in length order, so each batch is padded as little as possible (up
    to a multiple of `bucket`, see padded_length)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]), reverse=descending)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = [rows[i] for i in index]
        ids, mask = pad_rows(batch, pad_id, padded_length(max(map(len, batch)), bucket, max_length))
        yield index, {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def pad_rows(rows: list[list[int]], value: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (to `length`, default the longest row) and their attention mask."""
    ids = torch.full((len(rows), length or max(map(len, rows))), value, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


@contextlib.contextmanager
def quiet_transformers():
    """transformers warns on every untied mT5 load that the config asks for tying; we check it ourselves."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def at_revision(ref: str, revision: str | None) -> dict:
    """from_pretrained's revision argument for a hub id; a local directory has no revisions."""
    return {"revision": revision} if revision and not Path(ref).exists() else {}


def _checkpoint_files(ref: str, revision: str | None = None) -> list[Path]:
    """The weight files from_pretrained reads: safetensors, else (older hub models) pytorch_model*.bin."""
    local = Path(ref)
    if local.is_dir():
        return sorted(local.glob("*.safetensors")) or sorted(local.glob("pytorch_model*.bin"))
    from huggingface_hub import try_to_load_from_cache

    for single, index_name in (("model.safetensors", "model.safetensors.index.json"),
                               ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        index = try_to_load_from_cache(ref, index_name, **at_revision(ref, revision))
        if isinstance(index, str):
            names = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
        else:
            names = [single]
        files = [try_to_load_from_cache(ref, name, **at_revision(ref, revision)) for name in names]
        if any(isinstance(f, str) for f in files):
            return [Path(f) for f in files if isinstance(f, str)]
    return []


def stores_own_lm_head(ref: str, revision: str | None = None) -> bool:
    """Whether the checkpoint's files hold an lm_head distinct from the input embeddings."""
    from safetensors import safe_open

    for path in _checkpoint_files(ref, revision):
        if path.suffix == ".bin":  # mmap: the keys without reading the tensors
            if "lm_head.weight" in torch.load(path, map_location="cpu", weights_only=True, mmap=True):
                return True
            continue
        with safe_open(str(path), "pt") as handle:
            if "lm_head.weight" in handle.keys():
                return True
    return False


def assert_head_untied(model, ref: str) -> None:
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        raise ModelError(f"{ref}: lm_head is tied to the input embeddings, but the checkpoint stores its own "
                         "output layer (mT5 is untied); something called tie_weights()")


def _explain_load_error(ref: str, err: Exception) -> ModelError:
    if not Path(ref).exists() and ref.startswith((".", "/", "~")):
        hint = "no such directory"
    elif os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in str(err).lower() or "connect" in str(err).lower():
        hint = ("it is neither a local directory nor in the Hugging Face cache, and the hub cannot be reached "
                f"(HF_HUB_OFFLINE or no network): download it on a machine with network (hf download {ref}) and "
                "point HF_HOME at that cache, or set model.path to a local directory")
    elif not Path(ref).exists() and ("/" not in ref or ref.startswith((".", "/"))):
        hint = "no such directory"
    else:
        hint = str(err).splitlines()[0]
    return ModelError(f"model {ref!r}: {hint}")


def load_tokenizer(ref: str, sentinels: int = 0, revision: str | None = None):
    """The tokenizer of `ref` (at `revision`, for a hub id); with sentinels=N, refuse one that lacks
    <extra_id_0> .. <extra_id_N-1>."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, **at_revision(ref, revision))
    except (OSError, ValueError) as err:
        if not Path(ref).is_dir():
            raise _explain_load_error(ref, err) from err
        found = [name for name in TOKENIZER_FILES if (Path(ref) / name).exists()]
        problem = (f"its tokenizer files ({', '.join(found)}) cannot be read ({' '.join(str(err).split())})" if found
                   else f"it holds no tokenizer ({' or '.join(TOKENIZER_FILES)})")
        raise ModelError(f"model {ref!r}: {problem}; copy them from the model it came from") from err
    vocabulary = tokenizer.get_vocab()
    # Without its vocabulary files transformers builds a stand-in of special tokens alone, mapping every word to
    # <unk>, and training and decoding would run on that without an error.
    special = set(tokenizer.all_special_tokens)
    if sum(token not in special for token in vocabulary) < 2:
        raise ModelError(f"model {ref!r}: its tokenizer has no vocabulary beyond its {len(vocabulary)} special "
                         "tokens: the tokenizer files (tokenizer.json, spiece.model) are missing or broken; copy "
                         "them from the model it came from")
    missing = [f"<extra_id_{i}>" for i in range(sentinels) if f"<extra_id_{i}>" not in vocabulary]
    if missing:
        raise ModelError(f"tokenizer of {ref!r} lacks the sentinel token {missing[0]} that the task templates "
                         "use (paper Table 10); use a T5-family tokenizer (mT5, umT5, ByT5) or add the sentinels "
                         "as special tokens and resize the model's embeddings")
    return tokenizer


def use_attention(model, attention: str | None):
    """Set the attention implementation ("eager", "sdpa"; None: transformers' default), and lay out T5's relative
    position bias so that sdpa can use a fused kernel on CUDA.

    T5's compute_bias permutes its (query, key, heads) embedding output into a (1, heads, query, key) view whose
    last dimension has stride `heads`. transformers up to 5.17 passes that view to sdpa as its mask, and sdpa on
    CUDA then runs no fused kernel ("All fused kernels require the last dimension of the input to have stride 1
    ... Attn_mask.stride(-1): 12") but its fp32 math kernel: on an H200 (torch 2.11, transformers 5.17) the encoder
    of a 256 x 400-token decode batch took 0.27 s of the batch's 0.67 s. A hook stores the embedding's output
    heads-major, which makes that view contiguous; the values are unchanged. Later transformers copy the mask to
    contiguous memory themselves, and the hook then saves them that copy."""
    if attention is not None:
        model.set_attn_implementation(attention)
    for name, module in model.named_modules():
        if name.endswith("relative_attention_bias") and not hasattr(module, "_heads_major"):
            module.register_forward_hook(_heads_major)
            module._heads_major = True


def _heads_major(module, inputs, output: torch.Tensor) -> torch.Tensor:
    return output.permute(2, 0, 1).contiguous().permute(1, 2, 0) if output.dim() == 3 else output


def load_model(ref: str, device: torch.device | None = None, dtype: torch.dtype | None = None,
               attention: str | None = None, revision: str | None = None):
    """A seq2seq model from a directory or hub id (at `revision`), checked for an untied head where it has one.

    attention: "eager" or "sdpa" (transformers' default). T5's relative position bias is a float mask that
    keeps sdpa off its flash kernel, and eager measured faster for mT5 training (benchmarks/anchors.json)."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    try:
        config = AutoConfig.from_pretrained(ref, **at_revision(ref, revision))
    except (OSError, ValueError) as err:
        raise _explain_load_error(ref, err) from err
    if not getattr(config, "is_encoder_decoder", False):
        raise ModelError(f"model {ref!r} is a {config.model_type} model without an encoder; "
                         "this pipeline needs an encoder-decoder (seq2seq) model such as mT5")
    # A directory's unreadable weights are damaged files; a hub id's OSError is the cache or the network.
    local = unreadable_weights_named(ref) if Path(ref).is_dir() else contextlib.nullcontext()
    try:
        with local, quiet_transformers():
            model = AutoModelForSeq2SeqLM.from_pretrained(ref, dtype=dtype or torch.float32,
                                                          attn_implementation=attention, **at_revision(ref, revision))
            own_head = stores_own_lm_head(ref, revision)
    except OSError as err:
        raise _explain_load_error(ref, err) from err
    except RuntimeError as err:
        if "ignore_mismatched_sizes" not in str(err):
            raise
        raise ModelError(f"model {ref!r}: its weights do not have the sizes its config.json gives"
                         f"{_first_size_mismatch(ref, config, revision)}: config.json and the weight files come from "
                         "different models; copy the model's files again, all from one place") from err
    if own_head:
        assert_head_untied(model, ref)
    use_attention(model, None)  # from_pretrained has set `attention`
    return model.to(device or resolve_device())


def _first_size_mismatch(ref: str, config, revision: str | None) -> str:
    """One tensor whose shape in the weight files differs from what the config builds, as a message's detail."""
    from safetensors import safe_open
    from transformers import AutoModelForSeq2SeqLM

    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in AutoModelForSeq2SeqLM.from_config(config).state_dict().items()}
    for path in _checkpoint_files(ref, revision):
        if path.suffix == ".safetensors":
            with safe_open(path, "pt") as weights:
                for name in weights.keys():
                    stored = tuple(weights.get_slice(name).get_shape())
                    if name in expected and expected[name] != stored:
                        return f" ({name}: {list(stored)} in {path.name}, {list(expected[name])} by config.json)"
    return ""


def check_vocabulary(tokenizer, model, ref: str) -> None:
    """A tokenizer that gives ids beyond the model's embedding table (a tokenizer copied from another model) would
    fail at the first batch with an index error, or a device-side assert on a GPU."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ModelError(f"model {ref!r}: its tokenizer has {len(tokenizer)} tokens but its embeddings only "
                         f"{model.get_input_embeddings().num_embeddings} (config.json's vocab_size "
                         f"{model.config.vocab_size}): the tokenizer files come from another model")


@contextlib.contextmanager
def unreadable_weights_named(ref: str):
    """A missing or truncated weights file (a copy cut short, a full disk) as a ModelError naming the model."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as err:
        raise ModelError(f"model {ref!r}: its weights cannot be read ({str(err).splitlines()[0]}); the "
                         "safetensors files are missing or damaged: copy them again, or for a checkpoint of a run, "
                         "delete the run's directory and rerun its fine-tuning") from err


def load_weights_into(model, ref: str, only: torch.nn.Module | None = None) -> None:
    """Another checkpoint of the same model, copied into `model`'s tensors in place: nothing is rebuilt, and
    code compiled around the model (a static-cache decoder) stays valid for the next checkpoint.
    `only`: a part of `model` (XLRS: its encoder) whose tensors alone are read and replaced."""
    from safetensors import safe_open

    files = sorted(Path(ref).glob("*.safetensors"))  # a run's own checkpoint directory
    if not files:
        raise ModelError(f"model {ref!r}: no such directory, or no safetensors files in it")
    tensors = model.state_dict()
    known = names = set(tensors)
    if only is not None:  # the part's tensors under the model's names, shared ones (embeddings) included
        part = {tensor.data_ptr() for tensor in only.state_dict().values()}
        names = {name for name, tensor in tensors.items() if tensor.data_ptr() in part}
    state, unexpected = {}, []
    with unreadable_weights_named(ref):
        for path in files:
            with safe_open(str(path), "pt") as handle:
                unexpected += [key for key in handle.keys() if key not in known]
                state.update({key: handle.get_tensor(key) for key in handle.keys() if key in names})
    try:
        missing, _ = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another architecture
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise ModelError(f"model {ref!r} does not fit the loaded model: {detail}") from None
    # save_pretrained stores a tied tensor once (shared.weight, not encoder/decoder.embed_tokens.weight).
    untied_missing = sorted((set(missing) & names) - set(getattr(model, "all_tied_weights_keys", {}) or {}))
    if untied_missing or unexpected:
        raise ModelError(f"model {ref!r} does not fit the loaded model: missing {untied_missing[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]}")
    if "lm_head.weight" in state:
        assert_head_untied(model, ref)


def state_in(model, dtype: torch.dtype) -> dict:
    """The model's state as CPU copies in `dtype`, the model untouched (a run goes on training its fp32 weights);
    tensors that share storage (tied embeddings) stay shared, since save_pretrained drops aliases by pointer."""
    copies, state = {}, {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key not in copies:
            copies[key] = tensor.detach().to("cpu", dtype=dtype if tensor.is_floating_point() else tensor.dtype)
        state[name] = copies[key]
    return state


def save_model(model, tokenizer, out_dir: str | Path, dtype: torch.dtype | None = None) -> None:
    """save_pretrained (safetensors, in `dtype` if given) into a temporary directory, renamed into place when
    complete."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    untied = model.get_output_embeddings() is not None and \
        model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    converted = dtype is not None and dtype != next(model.parameters()).dtype
    with full_disk_named(out_dir):
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_in(model, dtype) if converted else None)
        if converted:  # save_pretrained writes the model's own dtype into the config
            config = json.loads((tmp / "config.json").read_text())
            (tmp / "config.json").write_text(json.dumps({**config, "dtype": str(dtype).removeprefix("torch.")},
                                                        indent=2, sort_keys=True) + "\n")
        tokenizer.save_pretrained(tmp)
    if untied and not stores_own_lm_head(str(tmp)):
        raise ModelError(f"{out_dir}: save_pretrained dropped the untied lm_head")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
