"""The benchmark harness (benchmarks/bench.py) at its tiny shape on the CPU: the record's structure, and the
math checks: our train_step and the Seq2SeqTrainer give the same losses, our decode and generate the same
greedy outputs (fp32). Speed targets are not asserted: they apply to mT5-base on a GPU."""
import json
import subprocess
import sys

import pytest
import torch

from benchmarks import bench
from benchmarks.synthetic import IdTokenizer, hf_collator, text
from conftest import REPO
from workflow_scripts import finetune

WARMUP, STEPS = 1, 3


def test_the_adapter_gives_collate_the_baselines_tensors():
    pairs = [([5, 6, 7, 1], [9, 1]), ([8, 1], [4, 4, 4, 1])]
    params = {"max_source_length": 16, "max_target_length": 16}
    encoded = finetune.encode_pairs(IdTokenizer(), [{"input": text(s), "target": text(t)} for s, t in pairs], params)[0]
    ours = finetune.collate(encoded, IdTokenizer.pad_token_id, params)
    baseline = hf_collator([{"input_ids": s, "labels": t} for s, t in pairs])
    assert ours.keys() == baseline.keys()
    assert all(torch.equal(ours[k], baseline[k]) for k in baseline)
    assert ours["labels"].tolist() == [[9, 1, -100, -100], [4, 4, 4, 1]]


GPU_PATH = ["--precision", "bf16", "--speed", json.dumps({"compile": True, "static_cache": True})]


@pytest.mark.parametrize("options", [[], GPU_PATH], ids=["cpu-defaults", "gpu-path"])
def test_tiny_benchmark_on_cpu(tmp_path, options, monkeypatch):
    """With the CPU's defaults, and with the GPU's: bf16, compiled training and the static cache (transformers
    compiles the static-cache step on CUDA only, so decoding here stays uncompiled)."""
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--shape", "tiny", "--device", "cpu",
                             "--steps", str(STEPS), "--warmup", str(WARMUP), "--decode-batches", "1",
                             *options, "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fine-tune samples/s |" in result.stdout
    record = json.loads(out.read_text())

    assert record["complete"] is True
    assert record["device"].startswith("cpu") and record["precision"] == ("bf16" if options else "fp32")
    assert "--shape tiny" in record["command"] and record["date"].endswith("+00:00")
    assert {"torch", "transformers"} <= record["versions"].keys()
    assert record["shape"]["name"] == "tiny" and record["shape"]["parameters"] > 0
    for section, figure in (("finetune", "samples_per_s"), ("decode", "new_tokens_per_s")):
        for side in ("ours", "baseline"):
            assert record[section][side][figure] > 0
        assert record[section]["ratio"][figure] == record[section]["ours"][figure] / record[section]["baseline"][figure]
    assert record["finetune"]["flops_per_step"] > 0 and record["finetune"]["ours"]["peak_memory_bytes"] is None
    decoding, template = record["decode"], bench.build_model(bench.SHAPES["tiny"], 0, 0.0)
    parameters = {part: sum(p.numel() for n, p in template.named_parameters() if n.startswith(part))
                  for part in ("encoder.", "decoder.", "lm_head.")}
    # cross-attention's keys and values run over the source, once per sequence
    cross_kv = sum(p.numel() for n, p in template.named_parameters() if n.split(".")[-3:-1] in (
        ["EncDecAttention", "k"], ["EncDecAttention", "v"]))
    assert cross_kv == 2 * template.config.num_decoder_layers * template.config.d_model * (
        template.config.num_heads * template.config.d_kv)
    assert decoding["flops"] == 2 * decoding["sequences"] * (  # a forward pass: 2 x parameters x their tokens
        (parameters["encoder."] + cross_kv) * decoding["source_tokens"] +
        (parameters["decoder."] - cross_kv + parameters["lm_head."]) * decoding["new_tokens"])
    assert decoding["ours"]["tflops"] == pytest.approx(decoding["flops"] / decoding["ours"]["seconds"] / 1e12)
    assert decoding["ours"]["utilisation"] is None  # no peak for a CPU
    assert record["finetune"]["ours"]["collate_s_per_step"] > 0

    math = record["math"]
    assert len(math["losses"]["ours"]) == len(math["losses"]["baseline"]) == WARMUP + STEPS
    assert math["first_loss"]["pass"] and math["curve"]["pass"] and math["baseline_head_untied"]
    agreement = record["decode"]["agreement"]
    assert agreement["baseline"]["top2_gap"]["count"] > 0
    if options:  # bf16 may break near-ties; the fp32 check on one batch may not
        assert record["fp32_check"]["identical_share"] == 1.0 and record["targets"]["decode_identical_fp32"]
        assert set(agreement) == {"baseline", "baseline_fp32_weights", "bf16_weights_vs_fp32_weights"}
        assert "| greedy outputs identical, generate on bf16 vs on fp32 weights;" in result.stdout
        assert record["decode"]["ratio"]["new_tokens_per_s_vs_fp32_weights"] > 0
        # The same bf16 weights and attention (sdpa, as generate) on the same batch: where our bucket padding gives
        # other shapes, some CPUs' bf16 kernels round differently and break a near-tie (AVX2-only EPYC: 1 of 16
        # sequences, at a logit gap of 0.05 against a usual top-2 gap of 1.1). A real difference is no near-tie.
        same_weights = agreement["baseline"]
        assert same_weights["identical_share"] == 1.0 or \
            same_weights["gap_at_first_difference"]["max"] < 0.1 * same_weights["top2_gap"]["median"]
    else:
        assert "fp32_check" not in record and record["targets"]["decode_identical_fp32"] is None
        assert math["first_loss"]["relative_difference"] <= 1e-5 and math["curve"]["max_relative_difference"] <= 1e-4
        assert record["decode"]["identical_share"] == 1.0  # greedy, fp32: token for token
        assert agreement["baseline"]["differing"] == 0 and agreement["baseline"]["gap_at_first_difference"] is None

    assert record["xlrs"]["languages"] == 17 and record["xlrs"]["seconds"] > 0
    assert record["xlrs"]["job_start_seconds"] > 0 and record["xlrs"]["next_checkpoint_load_seconds"] > 0
    assert record["xlrs"]["checkpoint_save_seconds"] > 0
    assert record["xlrs"]["next_encoder_load_seconds"] > 0 and record["xlrs"]["encoded_tokens_per_s"] > 0
    assert record["xlrs"]["rows"] == 16 * (record["shape"]["num_layers"] + 1)  # 16 targets x layers
    assert record["checkpoint"]["pass"] and 1.9 <= record["checkpoint"]["bytes_per_parameter"] <= 2.1

    compiled = record["finetune"]["ours"]["compile"]
    if options:
        assert record["speed"]["compiled"] and record["speed"]["static_cache_used"]
        assert compiled["graphs"] >= 1 and not compiled["failed_frames"] and not compiled["graph_breaks"]
        assert record["decode"]["ours"]["compile"] == {"graphs": 0, "failed_frames": 0, "graph_breaks": 0}
    else:
        assert compiled is None and record["decode"]["ours"]["compile"] is None

    targets = record["targets"]
    assert targets["apply"] is False  # tiny on a CPU: the speed targets are reported, not meant
    assert targets["math"] and targets["checkpoint"] and (options or targets["decode_identical"])
    assert {"finetune_speed", "finetune_memory", "decode_speed", "xlrs"} <= targets.keys()
    check_the_estimate_reads_a_gpu_record(record, tmp_path, monkeypatch)


def test_agreement_measures_the_logit_gap_where_greedy_outputs_part(tiny_model_dir):
    """A decoding that takes the reference's second-best token at position 2 parts from its greedy one there,
    by exactly the reference's top-1 / top-2 logit gap."""
    from benchmarks import agreement
    from workflow_scripts import modeling

    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).eval()
    model.generation_config.min_new_tokens = 6
    sources = [[5, 6, 7, 8, 1], [9, 10, 1]]
    ids, mask = modeling.pad_rows(sources, 0)
    with torch.inference_mode():
        greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)[:, 1:]
    ours = [text(row) for row in greedy.tolist()]
    logits = agreement.reference_logits(model, sources[:1], [[0] + greedy[0, :2].tolist()], "cpu")[0, 2]
    top = logits.topk(2)
    assert top.indices[0].item() == greedy[0, 2].item()
    theirs = [text(greedy[0, :2].tolist() + [top.indices[1].item()]), ours[1]]

    found = agreement.compare(model, sources, ours, theirs, "cpu")
    assert agreement.first_differences(ours, theirs) == [(0, 2, greedy[0, 2].item(), top.indices[1].item())]
    assert found["identical_share"] == 0.5 and found["differing"] == 1
    assert found["gap_at_first_difference"]["median"] == pytest.approx((top.values[0] - top.values[1]).item())
    gap, pair = found["gap_at_first_difference"]["median"], (top.values[0].item(), top.values[1].item())
    assert found["bf16_steps_at_first_difference"]["median"] == pytest.approx(agreement.bf16_steps(gap, pair))
    assert found["top2_gap"]["count"] == found["top_logit"]["count"] == 2 * 6
    assert agreement.compare(model, sources, ours, ours, "cpu")["gap_at_first_difference"] is None


def test_a_logit_gap_is_counted_in_bf16_steps_at_the_larger_logit():
    """bf16 keeps 8 significant bits: between 64 and 128 its step is 0.5, from 128 to 256 it is 1."""
    from benchmarks.agreement import bf16_steps

    assert bf16_steps(0.5, (126.0, 125.5)) == 1.0
    assert bf16_steps(0.25, (-100.0, -99.75)) == 0.5
    assert bf16_steps(1.0, (127.5, 128.5)) == 1.0
    assert bf16_steps(0.0, (0.0, 0.0)) == 0.0  # two zero logits: an exact tie


def check_the_estimate_reads_a_gpu_record(record, folder, monkeypatch):
    """workflow_scripts.estimate takes our side's figures from a record of mT5-base on a GPU, and ignores a
    smoke test's."""
    from workflow_scripts import estimate
    from workflow_scripts.config import load_config
    from workflow_scripts.plan import Study

    anchors = json.loads((REPO / "benchmarks" / "anchors.json").read_text())
    (folder / "anchors.json").write_text(json.dumps(anchors))
    monkeypatch.setattr(estimate, "BENCHMARKS", folder)
    assert estimate.throughput()["train_samples_per_second"] == anchors["train_samples_per_second"]
    (folder / "record.json").write_text(json.dumps({**record, "targets": {**record["targets"], "apply": True}}))
    speed = estimate.throughput()
    assert speed["train_samples_per_second"] == record["finetune"]["ours"]["samples_per_s"]
    assert speed["generate_new_tokens_per_second_static_cache"] == record["decode"]["ours"]["new_tokens_per_s"]
    assert speed["generate_new_tokens_per_second"] == record["decode"]["baseline"]["new_tokens_per_s"]
    assert speed["encode_sentences_per_second"] == 17 * record["xlrs"]["sentences"] / record["xlrs"]["seconds"]
    assert speed["job_start_seconds"] == record["xlrs"]["job_start_seconds"]
    assert speed["checkpoint_load_seconds"] == record["xlrs"]["next_checkpoint_load_seconds"]
    assert speed["checkpoint_save_seconds"] == record["xlrs"]["checkpoint_save_seconds"]
    assert speed["encoder_load_seconds"] == record["xlrs"]["next_encoder_load_seconds"]
    # a job start the record could not time (bench.job_start_seconds gave None): the anchor's
    untimed = {**record, "targets": {**record["targets"], "apply": True},
               "xlrs": {**record["xlrs"], "job_start_seconds": None}}
    (folder / "record.json").write_text(json.dumps(untimed))
    assert estimate.throughput()["job_start_seconds"] == anchors["job_start_seconds"]
    (folder / "record.json").write_text(json.dumps({**record, "targets": {**record["targets"], "apply": True}}))
    plan = estimate.estimate(Study(load_config(REPO / "config" / "paper.yaml")))
    assert plan["gpu_hours"]["total"] > 0 and "record.json" in plan["throughput_from"]
    # Compiling, at most: every (micro-batch 32, source bucket, target bucket) shape a run's lengths allow, once.
    # Sources up to 512 in buckets of 128: 4; targets up to 512 (UDPOS) in buckets of 32: 16, the others' 2 among them.
    compile_s = record["finetune"]["ours"]["first_step_s"] - record["finetune"]["ours"]["step_s"]
    assert speed["train_compile_seconds"] == compile_s
    assert plan["compiled_shapes_at_most"]["finetune"] == 4 * 16 and plan["compiled_shapes_at_most"]["decode"] > 0
    scale = plan["parameters"] / estimate.REFERENCE_PARAMETERS
    assert plan["compile_hours_at_most"]["finetune"] == round(64 * compile_s * scale / 3600, 1)
    older = {key: value for key, value in record.items() if key != "record_version"}  # decode.baseline meant another
    (folder / "record.json").write_text(json.dumps({**older, "targets": {**record["targets"], "apply": True}}))
    assert estimate.throughput()["train_samples_per_second"] == anchors["train_samples_per_second"]
    partial = {key: value for key, value in record.items() if key != "xlrs"}  # a --sections run
    (folder / "record.json").write_text(json.dumps({**partial, "targets": {**record["targets"], "apply": True}}))
    assert estimate.throughput()["train_samples_per_second"] == anchors["train_samples_per_second"]


def test_one_section_alone(tmp_path):
    """--sections decode: decoding side by side and nothing else; the other targets are None, not failed."""
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--shape", "tiny", "--device", "cpu",
                             "--decode-batches", "1", "--sections", "decode", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["complete"] and record["sections"] == ["decode"]
    assert "decode" in record and not {"finetune", "math", "xlrs", "checkpoint"} & record.keys()
    targets = record["targets"]
    speedup = record["decode"]["ratio"]["new_tokens_per_s"]
    assert targets["decode_identical"] is True and targets["decode_speed"] is (speedup >= 3.0)
    assert all(targets[key] is None for key in ("finetune_speed", "finetune_memory", "math", "xlrs", "checkpoint"))
    assert "| decode new tokens/s |" in result.stdout and "fine-tune" not in result.stdout


def test_a_failed_job_start_child_costs_only_its_own_figure(monkeypatch):
    """The xlrs section times a workflow job's start in a child process; where it cannot start (a GPU in
    exclusive-process mode), the figure is None and the table says n/a (the estimate keeps its anchor:
    check_the_estimate_reads_a_gpu_record)."""
    monkeypatch.setattr(bench.sys, "executable", "false")
    assert bench.job_start_seconds(torch.device("cpu")) is None
    monkeypatch.undo()
    xlrs = {"languages": 17, "sentences": 8, "seconds": 1.0, "job_start_seconds": None,
            "next_checkpoint_load_seconds": 0.5, "next_encoder_load_seconds": 0.2}
    record = {"xlrs": xlrs, "checkpoint": {"bytes": 1e6}, "targets": {"xlrs": True, "checkpoint": True}}
    assert "| a workflow job's start; each further checkpoint's load, whole and its encoder only | n/a; 0.50 s" \
        in bench.table(record)


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("CUDA graphs: capture failed")
    monkeypatch.setattr(bench, "decode_section", broken)
    out = tmp_path / "record.json"
    record = bench.main(["--shape", "tiny", "--device", "cpu", "--steps", "1", "--warmup", "1",
                         "--sections", "decode", "xlrs", "--out", str(out)])
    assert record["errors"] == {"decode": "RuntimeError: CUDA graphs: capture failed"}
    assert record["complete"] is False and record["targets"]["decode_speed"] is None
    assert record["xlrs"]["seconds"] > 0 and json.loads(out.read_text())["errors"] == record["errors"]


def test_profile_of_a_decode_batch(tmp_path):
    record = bench.main(["--shape", "tiny", "--device", "cpu", "--sections", "decode", "--decode-batches", "1",
                         "--profile", "--out", str(tmp_path / "record.json")])
    found = record["decode"]["ours"]["profile"]
    assert found["seconds"] > 0 and len(found["host_total_ms"]) == 15
    host = [op["ms"] for op in found["host_total_ms"]]
    assert host == sorted(host, reverse=True) and host[0] > 0
    assert any(op["name"].startswith("aten::") and op["calls"] > 0 for op in found["host_total_ms"])
    assert "profile" not in record["decode"]["baseline"]


def test_compiles_start_from_an_empty_cache_unless_one_is_named(tmp_path, monkeypatch):
    """first_step_s and warmup_s are cold compiles (the cost estimate's figure), not an earlier run's cache hits."""
    import os
    from pathlib import Path

    from workflow_scripts.cli import COMPILE_CACHE_VARIABLE

    seen = {}

    def look(*args):
        seen["cache"] = os.environ[COMPILE_CACHE_VARIABLE]
        seen["empty"] = not os.listdir(seen["cache"])
        raise RuntimeError("enough")
    monkeypatch.setattr(bench, "xlrs_section", look)
    monkeypatch.delenv(COMPILE_CACHE_VARIABLE, raising=False)
    options = ["--shape", "tiny", "--device", "cpu", "--sections", "xlrs", "--out", str(tmp_path / "record.json")]
    record = bench.main(options)
    assert seen["empty"] and record["speed"]["compile_cache"] == "empty at the start: cold compiles"
    assert COMPILE_CACHE_VARIABLE not in os.environ and not Path(seen["cache"]).exists()
    monkeypatch.setenv(COMPILE_CACHE_VARIABLE, str(tmp_path / "mine"))
    assert bench.main(options)["speed"]["compile_cache"] == seen["cache"] == str(tmp_path / "mine")
