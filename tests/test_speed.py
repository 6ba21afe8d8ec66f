"""The speed settings (config `speed`, modeling.SPEED_DEFAULTS) change how fast, never what: length buckets,
a compiled training step, a static KV cache and the attention implementation give the results of the plain
path (fp32, CPU), and changing them plans no job."""
import copy
import functools
import json

import pytest
import torch
import yaml

from conftest import REPO, dry_run, tiny_config
from workflow_scripts import decode, finetune, modeling, xlrs

PARAMS = {"micro_batch_size": 4, "max_grad_norm": 1.0, "learning_rate": 1e-3, "weight_decay": 0.0,
          "max_source_length": 40, "max_target_length": 20}
PLAIN = {**modeling.SPEED_DEFAULTS, "compile": False, "static_cache": False, "source_bucket": 1, "target_bucket": 1}
SENTENCES = ["the cat sat on the mat", "a dog", "zwei kleine Hunde laufen im Park herum", "猫在垫子上",
             "un chat", "el perro come", "the quick brown fox jumps over the lazy dog again and again", "hi"]


def test_schema_defaults_are_the_code_defaults():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    properties = schema["properties"]["speed"]["properties"]
    assert {key: value["default"] for key, value in properties.items()} == modeling.SPEED_DEFAULTS


def test_unknown_speed_setting_is_named():
    with pytest.raises(ValueError, match="'complie'"):
        modeling.speed_settings({"complie": True})


@pytest.mark.parametrize("longest, multiple, cap, expected", [
    (150, 128, 512, 256), (128, 128, 512, 128), (500, 128, 512, 512), (90, 128, 100, 100), (7, 1, 100, 7),
    (30, 32, None, 32)])
def test_padded_length_rounds_up_to_the_bucket_within_the_cap(longest, multiple, cap, expected):
    assert modeling.padded_length(longest, multiple, cap) == expected


def pairs(tokenizer, n=8):
    examples = [{"input": SENTENCES[i % len(SENTENCES)], "target": SENTENCES[(i + 3) % len(SENTENCES)]}
                for i in range(n)]
    return finetune.encode_pairs(tokenizer, examples, PARAMS)[0]


@pytest.fixture(autouse=True)
def no_accelerator_state_left_behind():
    """Each training here sets up its own Accelerator, as each run does; none outlives its test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def fresh_training(model_dir, params, speed, precision="no"):
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    torch.manual_seed(0)
    return finetune.setup_training(modeling.load_model(model_dir, device=torch.device("cpu")), params, speed, "cpu",
                                   precision)


def losses_and_weights(model_dir, speed, steps=3, params=PARAMS, precision="no"):
    tokenizer = modeling.load_tokenizer(model_dir)
    training = fresh_training(model_dir, params, speed, precision)
    training.model.train()  # tiny_model_dir has no dropout: compiled and uncompiled runs can be compared
    batch = pairs(tokenizer)
    training.buckets = (speed["source_bucket"], speed["target_bucket"])  # also uncompiled: tests the padding itself
    losses = [finetune.train_step(training, batch, tokenizer.pad_token_id, params) for _ in range(steps)]
    return losses, training.accelerator.unwrap_model(training.model).lm_head.weight.detach().clone()


def test_collate_pads_to_the_buckets_and_masks_the_padding(tiny_model_dir):
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    encoded = pairs(tokenizer)
    batch = finetune.collate(encoded, tokenizer.pad_token_id, PARAMS, (16, 8))
    longest_source, longest_target = (max(len(p[i]) for p in encoded) for i in (0, 1))
    assert batch["input_ids"].shape[1] == min(40, -(-longest_source // 16) * 16)
    assert batch["labels"].shape[1] == min(20, -(-longest_target // 8) * 8)
    assert batch["attention_mask"].sum().item() == sum(len(p[0]) for p in encoded)
    assert (batch["labels"] != -100).sum().item() == sum(len(p[1]) for p in encoded)


def test_training_pads_to_buckets_only_when_compiled(tiny_model_dir):
    speed = {**PLAIN, "source_bucket": 128, "target_bucket": 32}
    assert fresh_training(tiny_model_dir, PARAMS, {**speed, "compile": "auto"}).buckets == (1, 1)  # on a CPU
    compiled = fresh_training(tiny_model_dir, PARAMS, {**speed, "compile": True})
    assert compiled.buckets == (128, 32) and compiled.loss is not finetune.model_loss


def test_length_buckets_do_not_change_training(tiny_model_dir):
    plain, plain_weights = losses_and_weights(tiny_model_dir, PLAIN)
    bucketed, bucketed_weights = losses_and_weights(tiny_model_dir, {**PLAIN, "source_bucket": 32, "target_bucket": 16})
    assert bucketed == pytest.approx(plain, rel=1e-5)
    assert torch.allclose(bucketed_weights, plain_weights, atol=1e-6)


def test_micro_batches_sum_to_the_batch(tiny_model_dir):
    plain, plain_weights = losses_and_weights(tiny_model_dir, PLAIN, params={**PARAMS, "micro_batch_size": 8})
    accumulated, weights = losses_and_weights(tiny_model_dir, PLAIN, params={**PARAMS, "micro_batch_size": 3})
    assert accumulated == pytest.approx(plain, rel=1e-5)
    assert torch.allclose(weights, plain_weights, atol=1e-6)


def test_compiled_training_gives_the_same_losses(tiny_model_dir):
    plain, plain_weights = losses_and_weights(tiny_model_dir, {**PLAIN, "source_bucket": 64, "target_bucket": 32})
    compiled, compiled_weights = losses_and_weights(tiny_model_dir, {**PLAIN, "compile": True, "source_bucket": 64,
                                                                     "target_bucket": 32})
    counts = modeling.compile_counts()  # setup_training starts the count
    assert counts["graphs"] >= 1 and not counts["failed_frames"]  # it ran compiled, not silently eager
    assert not counts["graph_breaks"]  # one graph: every step is the compiled forward
    assert compiled == pytest.approx(plain, rel=1e-4)
    assert torch.allclose(compiled_weights, plain_weights, atol=1e-5)


def test_training_builds_no_kv_cache(tiny_model_dir, monkeypatch):
    """A training forward that builds the decoder's KV cache does work nobody reads, and on torch 2.11 (the GPU
    machines' image) the cache's copy.deepcopy of the config breaks the compiled step into several graphs, which
    the no-graph-break test above only sees on that torch. So: no cache is built, on any torch."""
    from transformers import cache_utils

    built = []
    original = cache_utils.DynamicCache.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(cache_utils.DynamicCache, "__init__", counting_init)
    losses_and_weights(tiny_model_dir, PLAIN, steps=1)
    assert built == []


def test_graph_breaks_are_reported_in_the_log(monkeypatch, caplog):
    """On another torch the same code may compile in pieces (as the training step did on torch 2.11)."""
    monkeypatch.setattr(modeling, "compile_counts", lambda: {"graphs": 3, "failed_frames": 0, "graph_breaks": 2})
    with caplog.at_level("INFO", logger="modeling"):
        assert modeling.check_compiled("run-x: the training step", "compile")["graph_breaks"] == 2
    assert "run-x: the training step: torch.compile compiled it in pieces (graphs 3, failed_frames 0, " \
           "graph_breaks 2)" in caplog.text and "did not compile" not in caplog.text
    monkeypatch.setattr(modeling, "compile_counts", lambda: {"graphs": 1, "failed_frames": 0, "graph_breaks": 0})
    caplog.clear()
    with caplog.at_level("INFO", logger="modeling"):
        modeling.check_compiled("run-x: the training step", "compile")
    assert [r.levelname for r in caplog.records] == ["INFO"] and "graphs 1" in caplog.text


def test_a_failed_compile_trains_uncompiled_and_says_so(tiny_model_dir, monkeypatch, caplog):
    """A backend that cannot compile (a torch or driver problem on some GPU) costs speed, not the run: the step
    runs uncompiled with the same results, and the check finetune.train makes after its first step says so."""
    import torch._dynamo

    def failing_backend(graph, example_inputs):
        raise RuntimeError("this backend cannot compile")

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **options: compile_(fn, backend=failing_backend, **options))
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    plain = fresh_training(tiny_model_dir, PARAMS, PLAIN)
    failing = fresh_training(tiny_model_dir, PARAMS, {**PLAIN, "compile": True})
    try:
        losses = [finetune.train_step(training, pairs(tokenizer), tokenizer.pad_token_id, PARAMS)
                  for training in (plain, failing)]
        counts = modeling.check_compiled("run-x", "compile")
    finally:
        torch._dynamo.reset()  # dynamo skips a function it failed on: later tests compile model_loss afresh
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert counts["graphs"] == 0 and counts["failed_frames"] >= 1
    assert "run-x: torch.compile did not compile it" in caplog.text and "{compile: false}" in caplog.text


def test_compiling_jobs_share_the_studys_compile_cache(tmp_path, monkeypatch, caplog):
    """The workflow points torch.compile's cache beside the study's results, so that a later job loads a length
    bucket's compiled code instead of compiling it again; a job that compiles says where that cache is."""
    import logging

    from workflow_scripts.cli import COMPILE_CACHE_VARIABLE
    from workflow_scripts.config import validate
    from workflow_scripts.plan import Study

    monkeypatch.chdir(tmp_path)
    study = Study(validate(tiny_config()))
    assert study.compile_cache == str(tmp_path / study.results / ".torch_compile_cache")
    common = (REPO / "rules" / "common.smk").read_text()
    assert "os.environ.setdefault(COMPILE_CACHE_VARIABLE, STUDY.compile_cache)" in common  # a user's own wins
    monkeypatch.setenv(COMPILE_CACHE_VARIABLE, study.compile_cache)
    with caplog.at_level(logging.INFO, logger="modeling"):
        modeling.before_compiling()
    assert f"torch.compile: compiled code is cached in {study.compile_cache}" in caplog.text


def test_compiled_training_under_bf16_autocast_as_on_a_gpu(tiny_model_dir):
    """The CUDA path's combination (accelerate's bf16 autocast around a compiled model), here on the CPU; and
    the compiled step never holds the logits in fp32: the cross-entropy over the vocabulary is fused into the
    graph, reading the bf16 logits (the 250k-entry output layer's fp32 logits would be GBs)."""
    import re

    import torch._inductor.config
    from torch._inductor.utils import run_and_get_code

    speed = {**PLAIN, "source_bucket": 64, "target_bucket": 32}
    plain, _ = losses_and_weights(tiny_model_dir, speed, precision="bf16")
    with torch._inductor.config.patch(fx_graph_cache=False):  # a cache hit would generate no code to read
        (compiled, _), code = run_and_get_code(losses_and_weights, tiny_model_dir, {**speed, "compile": True},
                                               precision="bf16")
    counts = modeling.compile_counts()
    assert counts["graphs"] >= 1 and not counts["failed_frames"] and not counts["graph_breaks"]
    assert compiled == pytest.approx(plain, rel=2e-2)  # bf16 keeps 8 mantissa bits

    vocabulary = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).config.vocab_size
    buffers = re.findall(r"empty_strided_\w+\(\(([\d, ]+)\), \([\d, ]+\), (torch\.\w+)\)", "\n".join(code))
    with_vocabulary = [(shape, dtype) for shape, dtype in buffers if shape.endswith(f", {vocabulary}")]
    assert with_vocabulary and all(dtype == "torch.bfloat16" for _, dtype in with_vocabulary), with_vocabulary


@pytest.mark.parametrize("num_beams", [1, 2])
def test_static_cache_and_buckets_decode_the_same_tokens(tiny_model_dir, num_beams, monkeypatch):
    """Also with the short last batch filled up to the batch size, so that the compiled step sees one batch size."""
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).eval()
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    plain, _ = decode.generate(model, tokenizer, SENTENCES, 3, num_beams, 12, 40, PLAIN)
    shapes, generate = [], model.generate

    def recording(**batch):
        shapes.append(tuple(batch["input_ids"].shape))
        return generate(**batch)

    monkeypatch.setattr(model, "generate", recording)
    static, _ = decode.generate(model, tokenizer, SENTENCES, 3, num_beams, 12, 40,
                                {**PLAIN, "static_cache": True, "source_bucket": 16})
    assert static == plain and any(plain)
    assert len(shapes) == 3 and {rows for rows, _ in shapes} == {3}  # 8 inputs: the last batch of 2 filled up
    assert all(length % 16 == 0 or length == 40 for _, length in shapes)  # a bucket, or the cap


@pytest.mark.parametrize("backend", ["inductor", "failing"])
def test_compiled_static_cache_decoding_as_on_a_gpu(tiny_model_dir, backend, caplog):
    """transformers compiles the static-cache decoding step on CUDA only; its testing switch
    (_compile_all_devices) runs that path here. Compiled, the tokens are the same; a backend that fails leaves
    the step uncompiled, with the same tokens, and decode.main's check names it in the log."""
    import torch._dynamo
    from transformers import CompileConfig

    def failing_backend(graph, example_inputs):
        raise RuntimeError("this backend cannot compile")

    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).eval()
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    plain, _ = decode.generate(model, tokenizer, SENTENCES, 8, 1, 12, 40, PLAIN)
    compile_config = CompileConfig(backend=failing_backend if backend == "failing" else backend)
    compile_config._compile_all_devices = True
    model.generation_config.compile_config = compile_config
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        static, _ = decode.generate(model, tokenizer, SENTENCES, 8, 1, 12, 40,
                                    {**PLAIN, "static_cache": True, "source_bucket": 16})
        counts = modeling.check_compiled("decode-x", "static_cache")
    finally:
        torch._dynamo.reset()
    assert static == plain
    if backend == "failing":
        assert counts["failed_frames"] and "decode-x: torch.compile did not compile it" in caplog.text
    else:
        assert counts["graphs"] >= 1 and not counts["failed_frames"] and not counts["graph_breaks"]
        assert "did not compile" not in caplog.text


def test_decoding_autocasts_bf16_weights_only(tiny_model_dir):
    """bf16 weights (decode.main's on CUDA) decode under bf16 autocast, here on the CPU as on a GPU; fp32 weights
    decode in fp32, or the benchmark's fp32 check on a GPU would compare an autocast decode with a plain one."""
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    autocast_seen = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = modeling.load_model(tiny_model_dir, device=torch.device("cpu"), dtype=dtype).eval()
        seen = autocast_seen.setdefault(dtype, set())
        model.get_encoder().register_forward_pre_hook(lambda module, args: seen.add(torch.is_autocast_enabled("cpu")))
        decode.generate(model, tokenizer, SENTENCES[:2], 2, 1, 3, 40, PLAIN)
    assert autocast_seen == {torch.float32: {False}, torch.bfloat16: {True}}


@pytest.mark.parametrize("batch_size", [8, 3])
def test_bf16_decoding_gives_generates_tokens_on_the_same_weights(tiny_model_dir, batch_size):
    """With decode_attention sdpa (generate's default), our length-sorted, differently padded batches give
    generate's greedy tokens on the same bf16 weights. (Eager attention rounds differently: when this test was
    written it parted from generate at near-ties in 2 of these 8 inputs.)"""
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    load = functools.partial(modeling.load_model, tiny_model_dir, device=torch.device("cpu"), dtype=torch.bfloat16)
    theirs, model = [], load().eval()
    for start in range(0, len(SENTENCES), batch_size):
        batch = tokenizer(SENTENCES[start:start + batch_size], return_tensors="pt", padding=True)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            output = model.generate(**batch, max_new_tokens=32, do_sample=False)
        theirs += [decode.clean(text, tokenizer) for text in tokenizer.batch_decode(output, skip_special_tokens=False)]
    ours, _ = decode.generate(load(attention=PLAIN["decode_attention"]).eval(), tokenizer, SENTENCES, batch_size, 1,
                              32, 64, PLAIN)
    assert PLAIN["decode_attention"] == "sdpa" and ours == theirs


def test_auto_static_cache_is_for_large_decode_jobs_only():
    assert decode.static_cache_for_job("auto", 250 * 10) is False  # a dev set at ten checkpoints
    assert decode.static_cache_for_job("auto", decode.STATIC_CACHE_MIN_SEQUENCES) == "auto"
    assert decode.static_cache_for_job(True, 1) is True and decode.static_cache_for_job(False, 10**6) is False


def test_eager_and_sdpa_attention_give_the_same_xlrs(tiny_model_dir):
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    ids, _ = modeling.tokenize(tokenizer, SENTENCES, 40)
    models = {attention: modeling.load_model(tiny_model_dir, device=torch.device("cpu"), attention=attention).eval()
              for attention in ("eager", "sdpa")}
    vectors = {attention: xlrs.encode(model, ids, tokenizer.pad_token_id, 3, 40) for attention, model in models.items()}
    assert torch.allclose(vectors["eager"], vectors["sdpa"], atol=1e-5)


def test_position_bias_is_laid_out_for_sdpas_fused_kernels(tiny_model_dir):
    """T5's position bias is a permuted view (last-dimension stride = heads), which keeps sdpa on CUDA off its fused
    kernels where transformers passes it on as it is (5.17); use_attention makes it contiguous, values unchanged."""
    from transformers import AutoModelForSeq2SeqLM

    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    batch = tokenizer(SENTENCES[:3], return_tensors="pt", padding=True)
    plain = AutoModelForSeq2SeqLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    ours = copy.deepcopy(plain)
    modeling.use_attention(ours, "sdpa")
    modeling.use_attention(ours, "sdpa")  # once is enough: a second call adds no second hook
    assert sum(len(m._forward_hooks) for m in ours.modules()) == 2  # encoder's and decoder's bias
    biases, outputs = {}, {}
    for name, model in (("plain", plain), ("ours", ours)):
        first_layer = model.get_encoder().block[0].layer[0].SelfAttention
        first_layer.register_forward_hook(lambda module, args, out, name=name: biases.update({name: out[1]}))
        with torch.inference_mode():
            outputs[name] = model(**batch, decoder_input_ids=batch["input_ids"][:, :4]).logits
    heads = plain.config.num_heads
    assert biases["plain"].stride(-1) == heads and not biases["plain"].is_contiguous()
    assert biases["ours"].is_contiguous() and torch.equal(biases["ours"], biases["plain"])
    assert torch.equal(outputs["ours"], outputs["plain"])
    assert modeling.load_model(tiny_model_dir, device=torch.device("cpu")).get_encoder().block[0].layer[0] \
        .SelfAttention.relative_attention_bias._heads_major


def test_a_nan_loss_stops_before_the_weights_change(tiny_model_dir):
    tokenizer = modeling.load_tokenizer(tiny_model_dir)
    training = fresh_training(tiny_model_dir, PARAMS, PLAIN)
    model = training.model
    with torch.no_grad():
        model.shared.weight[5] = float("nan")
    before = copy.deepcopy(model.lm_head.weight.detach())
    batch = [([5, 6, 1], [7, 1])] * 4
    with pytest.raises(FloatingPointError, match="loss is nan"):
        finetune.train_step(training, batch, tokenizer.pad_token_id, PARAMS)
    assert torch.equal(model.lm_head.weight, before)


def test_the_workflow_hands_its_speed_settings_to_the_jobs(finished_study):
    runs = list((finished_study / "results" / "runs").glob("*/run.json"))
    assert runs and all(json.loads(path.read_text())["speed"] == modeling.SPEED_DEFAULTS for path in runs)
    decodes = list((finished_study / "results" / "runs").glob("*/decode/dev/*.meta.json"))
    assert decodes and all(json.loads(path.read_text())["speed"]["decode_attention"] == "sdpa" for path in decodes)


def test_changing_speed_settings_plans_no_job(finished_study):
    config = tiny_config()
    config["speed"] = {"attention": "sdpa", "decode_attention": "eager", "compile": True, "static_cache": True,
                       "source_bucket": 64, "target_bucket": 8}
    assert dry_run(finished_study, config) == []
