"""The benchmark harness (benchmarks/bench.py) at its tiny shape on the CPU: the record's structure, and the
math checks: our train_step and the Seq2SeqTrainer give the same losses, our decode and generate the same
greedy outputs (fp32). Speed targets are not asserted: they apply to mT5-base on a GPU."""
import json
import subprocess
import sys

import pytest
import torch

from benchmarks.synthetic import IdTokenizer, hf_collator, text
from conftest import REPO
from workflow_scripts import finetune

WARMUP, STEPS = 1, 3


def test_the_adapter_gives_collate_the_baselines_tensors():
    pairs = [([5, 6, 7, 1], [9, 1]), ([8, 1], [4, 4, 4, 1])]
    params = {"max_source_length": 16, "max_target_length": 16}
    encoded = finetune.encode_pairs(IdTokenizer(), [{"input": text(s), "target": text(t)} for s, t in pairs], params)
    ours = finetune.collate(encoded, IdTokenizer.pad_token_id, params)
    baseline = hf_collator([{"input_ids": s, "labels": t} for s, t in pairs])
    assert ours.keys() == baseline.keys()
    assert all(torch.equal(ours[k], baseline[k]) for k in baseline)
    assert ours["labels"].tolist() == [[9, 1, -100, -100], [4, 4, 4, 1]]


@pytest.mark.parametrize("speed", [{}, {"compile": True, "static_cache": True}], ids=["cpu-defaults", "gpu-path"])
def test_tiny_benchmark_on_cpu(tmp_path, speed):
    """With the CPU's defaults, and with the GPU's compiled training and static cache forced on (transformers
    compiles the static-cache step on CUDA only, so decoding there stays uncompiled)."""
    out = tmp_path / "record.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--shape", "tiny", "--device", "cpu",
                             "--steps", str(STEPS), "--warmup", str(WARMUP), "--decode-batches", "1",
                             "--speed", json.dumps(speed), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fine-tune samples/s |" in result.stdout
    record = json.loads(out.read_text())

    assert record["device"].startswith("cpu") and record["precision"] == "fp32"
    assert "--shape tiny" in record["command"] and record["date"].endswith("+00:00")
    assert {"torch", "transformers"} <= record["versions"].keys()
    assert record["shape"]["name"] == "tiny" and record["shape"]["parameters"] > 0
    for section, figure in (("finetune", "samples_per_s"), ("decode", "new_tokens_per_s")):
        for side in ("ours", "baseline"):
            assert record[section][side][figure] > 0
        assert record[section]["ratio"][figure] == record[section]["ours"][figure] / record[section]["baseline"][figure]
    assert record["finetune"]["flops_per_step"] > 0 and record["finetune"]["ours"]["peak_memory_bytes"] is None
    assert record["finetune"]["ours"]["collate_s_per_step"] > 0

    math = record["math"]
    assert len(math["losses"]["ours"]) == len(math["losses"]["baseline"]) == WARMUP + STEPS
    assert math["first_loss"]["pass"] and math["first_loss"]["relative_difference"] <= 1e-5
    assert math["curve"]["pass"] and math["curve"]["max_relative_difference"] <= 1e-4
    assert math["baseline_head_untied"]
    assert record["decode"]["identical_share"] == 1.0  # greedy, fp32: token for token

    assert record["xlrs"]["languages"] == 17 and record["xlrs"]["seconds"] > 0
    assert record["xlrs"]["rows"] == 16 * (record["shape"]["num_layers"] + 1)  # 16 targets x layers
    assert record["checkpoint"]["pass"] and 1.9 <= record["checkpoint"]["bytes_per_parameter"] <= 2.1

    compiled = record["finetune"]["ours"]["compile"]
    if speed:
        assert record["speed"]["compiled"] and record["speed"]["static_cache_used"]
        assert compiled["graphs"] >= 1 and not compiled["failed_frames"]
        assert record["decode"]["ours"]["compile"] == {"graphs": 0, "failed_frames": 0, "graph_breaks": 0}
    else:
        assert compiled is None and record["decode"]["ours"]["compile"] is None

    targets = record["targets"]
    assert targets["apply"] is False  # tiny on a CPU: the speed targets are reported, not meant
    assert targets["math"] and targets["decode_identical"] and targets["checkpoint"]
    assert {"finetune_speed", "finetune_memory", "decode_speed", "xlrs"} <= targets.keys()
