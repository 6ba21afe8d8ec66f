"""Training data mixing, checkpoint spacing, the untied output layer across save and reload, progress lines."""
import json

import pytest
import torch

from workflow_scripts import finetune, modeling
from workflow_scripts.files import write_jsonl


def train_file(tmp_path, lang, n):
    path = tmp_path / lang / "train.jsonl"
    write_jsonl(path, [{"id": f"{lang}-{i}", "input": f"{lang} in {i}", "target": f"{lang} {i}"} for i in range(n)])
    return path


def spec(sources, n_train=10, seed=3):
    return {"sources": sources, "seed": seed, "train": {"n_train": n_train}}


def test_two_sources_share_the_same_total_equally(tmp_path):
    files = {"en": train_file(tmp_path, "en", 20), "zh": train_file(tmp_path, "zh", 20)}
    examples, counts, warnings = finetune.training_examples(spec(["en", "zh"]), files)
    assert counts == {"en": 5, "zh": 5} and not warnings
    # the FIRST n/k of each source
    assert sorted(e["target"] for e in examples) == sorted([f"en {i}" for i in range(5)]
                                                           + [f"zh {i}" for i in range(5)])


def test_shuffle_is_the_seeds(tmp_path):
    files = {"en": train_file(tmp_path, "en", 20), "zh": train_file(tmp_path, "zh", 20)}
    first = finetune.training_examples(spec(["en", "zh"]), files)[0]
    assert first == finetune.training_examples(spec(["en", "zh"]), files)[0]
    assert first != finetune.training_examples(spec(["en", "zh"], seed=4), files)[0]


def test_a_short_source_is_used_whole_with_a_warning(tmp_path):
    files = {"en": train_file(tmp_path, "en", 3)}
    examples, counts, warnings = finetune.training_examples(spec(["en"]), files)
    assert counts == {"en": 3} and len(examples) == 3
    assert "only 3 training examples of the 10" in warnings[0]


@pytest.mark.parametrize("schedule", ["linear", "constant"])
def test_learning_rates_are_transformers_schedules(schedule):
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=7e-5)
    scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=0, num_training_steps=10)
    expected = []
    for _ in range(10):  # as the Trainer: the rate of each optimizer step, then the scheduler's step
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    params = {"learning_rate": 7e-5, "lr_schedule": schedule}
    assert [finetune.learning_rate_at(step, 10, params) for step in range(10)] == pytest.approx(expected, rel=1e-12)


def test_checkpoints_are_evenly_spaced_and_end_at_the_last_step():
    assert finetune.checkpoint_steps(100, 4) == [25, 50, 75, 100]
    assert finetune.checkpoint_steps(10, 3) == [3, 7, 10]
    assert finetune.checkpoint_steps(2, 5) == [1, 2]


def test_epoch_order_is_a_function_of_seed_and_epoch():
    assert finetune.batch_order(50, 1, 0) == finetune.batch_order(50, 1, 0)
    assert finetune.batch_order(50, 1, 0) != finetune.batch_order(50, 1, 1)
    assert finetune.batch_order(50, 1, 0) != finetune.batch_order(50, 2, 0)
    assert sorted(finetune.batch_order(50, 1, 0)) == list(range(50))


def test_built_model_is_mt5_with_sentinels_and_an_untied_head(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "mt5"
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    assert tokenizer.convert_tokens_to_ids("<extra_id_99>") != tokenizer.unk_token_id
    assert tokenizer.tokenize("<extra_id_0>")[-1] == "<extra_id_0>"
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert model.encoder.embed_tokens.weight.data_ptr() == model.shared.weight.data_ptr()
    assert modeling.stores_own_lm_head(str(tiny_model_dir))


def test_untied_head_survives_save_and_reload_with_its_values(tiny_model_dir, tmp_path):
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    modeling.save_model(model, tokenizer, tmp_path / "again")
    again = modeling.load_model(str(tmp_path / "again"), device=torch.device("cpu"))
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(again.lm_head.weight, again.shared.weight)


def test_a_bf16_checkpoint_leaves_the_training_weights_untouched(tiny_model_dir, tmp_path):
    """A GPU run saves bf16 checkpoints of the fp32 weights it goes on training: saving must not round them."""
    import json

    from safetensors import safe_open

    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1e-4 * torch.randn_like(parameter))  # values bf16 cannot hold
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    modeling.save_model(model, tokenizer, tmp_path / "step", dtype=torch.bfloat16)

    for name, tensor in model.state_dict().items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, before[name]), name
    saved = modeling.load_model(str(tmp_path / "step"), device=torch.device("cpu"))
    for name, tensor in saved.state_dict().items():
        assert torch.equal(tensor, before[name].to(torch.bfloat16).float()), name
    with safe_open(str(tmp_path / "step" / "model.safetensors"), "pt") as handle:
        assert {handle.get_slice(key).get_dtype() for key in handle.keys()} == {"BF16"}
    assert json.loads((tmp_path / "step" / "config.json").read_text())["dtype"] == "bfloat16"
    assert saved.lm_head.weight.data_ptr() != saved.shared.weight.data_ptr()


def test_weights_loaded_in_place_equal_a_fresh_load(tiny_model_dir, tmp_path):
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5).add_(0.25)
    modeling.save_model(model, tokenizer, tmp_path / "later", dtype=torch.bfloat16)  # as a GPU run saves them

    reused = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    tensors = {name: tensor.data_ptr() for name, tensor in reused.state_dict().items()}
    modeling.load_weights_into(reused, str(tmp_path / "later"))
    fresh = modeling.load_model(str(tmp_path / "later"), device=torch.device("cpu"))
    assert {name: tensor.data_ptr() for name, tensor in reused.state_dict().items()} == tensors  # in place
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(reused.state_dict()[name], tensor), name
    assert reused.lm_head.weight.data_ptr() != reused.shared.weight.data_ptr()
    assert reused.encoder.embed_tokens.weight.data_ptr() == reused.shared.weight.data_ptr()


def test_only_the_encoder_is_read_when_asked(tiny_model_dir, tmp_path):
    """XLRS's reload: the encoder and the embeddings it shares take the checkpoint's values; the rest keeps its own."""
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(0.5).add_(0.25)
    modeling.save_model(model, modeling.load_tokenizer(str(tiny_model_dir)), tmp_path / "later", dtype=torch.bfloat16)
    later = modeling.load_model(str(tmp_path / "later"), device=torch.device("cpu")).state_dict()

    reused = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    before = {name: tensor.clone() for name, tensor in reused.state_dict().items()}
    modeling.load_weights_into(reused, str(tmp_path / "later"), only=reused.get_encoder())
    for name, tensor in reused.state_dict().items():
        expected = later if name.startswith(("encoder.", "shared.", "decoder.embed_tokens.")) else before
        assert torch.equal(tensor, expected[name]), name
    assert not torch.equal(reused.lm_head.weight, later["lm_head.weight"])


@pytest.mark.parametrize("encoder_only", [False, True])
def test_weights_of_another_shape_are_refused_by_name(tiny_model_dir, tmp_path, encoder_only):
    from workflow_scripts.build_model import build

    build({"build": {"vocab_size": 300, "d_model": 8, "d_ff": 16, "d_kv": 4, "num_heads": 2, "num_layers": 1,
                     "num_decoder_layers": 1, "dropout_rate": 0.0, "seed": 0, "tokenizer_sentences": 200},
           "tokenizer_languages": ["en", "zh"]}, tmp_path / "other")
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    with pytest.raises(modeling.ModelError, match="other.* does not fit the loaded model: size mismatch"):
        modeling.load_weights_into(model, str(tmp_path / "other"), only=model.get_encoder() if encoder_only else None)


def test_a_missing_checkpoint_is_named(tiny_model_dir, tmp_path):
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    with pytest.raises(modeling.ModelError, match="step-000004.*no such directory"):
        modeling.load_weights_into(model, str(tmp_path / "step-000004"))


def test_a_silently_tied_head_is_caught(tiny_model_dir):
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    model.tie_weights()  # what transformers 5.x does behind a user's back
    with pytest.raises(modeling.ModelError, match="lm_head is tied"):
        modeling.assert_head_untied(model, str(tiny_model_dir))


def test_a_checkpoint_in_pytorch_model_bin_is_read_for_its_own_head(tiny_model_dir, tmp_path):
    """Older hub models (google/mt5-base among them, at least once) ship pytorch_model.bin, not safetensors: the
    untied-head check must see their lm_head too."""
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(tiny_model_dir, tmp_path / "bin", ignore=shutil.ignore_patterns("*.safetensors"))
    weights = load_file(tiny_model_dir / "model.safetensors")
    torch.save(weights, tmp_path / "bin" / "pytorch_model.bin")
    assert modeling.stores_own_lm_head(str(tmp_path / "bin"))
    torch.save({k: v for k, v in weights.items() if k != "lm_head.weight"}, tmp_path / "bin" / "pytorch_model.bin")
    assert not modeling.stores_own_lm_head(str(tmp_path / "bin"))


def test_missing_model_directory_is_named(tmp_path):
    with pytest.raises(modeling.ModelError, match="no-such-model"):
        modeling.load_model(str(tmp_path / "no-such-model"))


def test_training_progress_is_a_log_line_per_checkpoint_and_per_interval(caplog, monkeypatch):
    clock = iter(range(0, 1000))  # a second per step
    monkeypatch.setattr(finetune.time, "monotonic", lambda: next(clock))
    progress = finetune.ProgressLog("run-x", total_steps=100, step=0, every=30)
    with caplog.at_level("INFO", logger="finetune"):
        for step in range(1, 101):
            progress.update(step, epoch=(step - 1) // 50, loss=float(step), samples=8,
                            saved_seconds=9.5 if step in (50, 100) else None)
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(":")[1] for line in lines] == [" step 1/100 (epoch 0)", " step 31/100 (epoch 0)",
                                                       " step 50/100 (epoch 0)", " step 80/100 (epoch 1)",
                                                       " step 100/100 (epoch 1)"]
    assert lines[0] == "run run-x: step 1/100 (epoch 0): loss 1.0000 (mean of 1 step), first step in 1.0 s"
    # steps 2-31 in 30 s: 8 samples/s, 69 steps left at a second each
    assert lines[1] == "run run-x: step 31/100 (epoch 0): loss 16.5000 (mean of 30 steps), 8.0 samples/s, about " \
                       "0:01:09 left"
    # steps 32-50 in 19 s, of which 9.5 s saving the checkpoint: 19 steps trained in 9.5 s
    assert lines[2].endswith("(mean of 19 steps), 16.0 samples/s, about 0:00:25 left; checkpoint saved in 9.50 s")


def test_a_resumed_run_reports_its_first_step_after_the_resume(caplog):
    progress = finetune.ProgressLog("run-x", total_steps=100, step=40)
    with caplog.at_level("INFO", logger="finetune"):
        progress.update(41, epoch=0, loss=2.0, samples=8)
        progress.update(42, epoch=0, loss=2.0, samples=8)  # within a minute: no line
    assert len(caplog.records) == 1 and "step 41/100 (epoch 0): loss 2.0000 (mean of 1 step), first step in" in \
        caplog.records[0].getMessage()


def test_a_run_under_several_processes_is_refused(tiny_model_dir, monkeypatch):
    """Batches are not sharded: N processes would each train, and save, the same run."""
    import accelerate

    monkeypatch.setattr(accelerate.Accelerator, "num_processes", property(lambda self: 2))
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    with pytest.raises(ValueError, match="not under `accelerate launch` with 2 processes"):
        finetune.setup_training(model, {"learning_rate": 1e-3, "weight_decay": 0.0}, modeling.speed_settings(None),
                                device="cpu")


def test_jobs_on_a_machine_of_several_gpus_each_take_a_free_one(tmp_path, monkeypatch, caplog):
    """Snakemake's gpu=N lets N jobs run at once; each takes a GPU no other holds, and its lock dies with it."""
    held = []
    monkeypatch.setattr(modeling, "HELD_GPU_LOCKS", held)
    names = ["3", "MIG-GPU-5/1/0", "7"]  # CUDA_VISIBLE_DEVICES may name GPUs by number or id
    assert [modeling.claim_gpu(names, tmp_path) for _ in names] == [0, 1, 2]
    assert modeling.claim_gpu(names, tmp_path) == 0 and "all 3 GPUs are held" in caplog.text
    held.pop(1).close()  # the job on GPU 5 ends
    assert modeling.claim_gpu(names, tmp_path) == 1
    for handle in held:
        handle.close()


def test_weight_decay_groups_are_seq2seq_trainers(tiny_model_dir, tmp_path):
    """With weight decay, the same parameters decay as under Seq2SeqTrainer (not biases, the relative position
    bias or the norms' scales); without it, one group and none decays."""
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    trainer = Seq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(str(tmp_path), weight_decay=0.1,
                                                                        report_to=[], use_cpu=True))
    theirs = {id(p): group["weight_decay"] for group in trainer.create_optimizer().param_groups
              for p in group["params"]}
    ours = {id(p): group["weight_decay"] for group in finetune.parameter_groups(model, 0.1) for p in group["params"]}
    assert ours == theirs and set(ours.values()) == {0.0, 0.1}
    names = {id(p): name for name, p in model.named_parameters()}
    assert not [names[i] for i, decay in ours.items() if decay and ("norm" in names[i] or "bias" in names[i])]
    assert [g["weight_decay"] for g in finetune.parameter_groups(model, 0.0)] == [0.0]


def test_a_second_ctrl_c_stops_at_once():
    """The first SIGINT asks for a save at the next step; a second one (a step that hangs) interrupts."""
    import os
    import signal

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even where the suite runs
        flag = finetune.install_stop_handlers()                   # in the background, with SIGINT ignored
        os.kill(os.getpid(), signal.SIGINT)
        assert flag["signal"] == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler before the next line
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a job started to ignore Ctrl-C keeps ignoring it
        finetune.install_stop_handlers()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
