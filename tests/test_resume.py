"""Preemption: fine-tuning killed part-way resumes from its saved state and ends bit-identical (CPU)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from workflow_scripts import demo_corpus
from workflow_scripts.cast import cast_records
from workflow_scripts.files import write_jsonl

SPEC = {"task": "title_generation", "kind": "generation", "sources": ["en"], "seed": 1,
        "train": {"n_train": 800, "epochs": 4, "batch_size": 8, "micro_batch_size": 4, "learning_rate": 1e-3,
                  "weight_decay": 0.0, "max_source_length": 64, "max_target_length": 16, "checkpoints": 3,
                  "max_grad_norm": 1.0, "lr_schedule": "linear"}}


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cast") / "en" / "train.jsonl"
    write_jsonl(path, cast_records("generation", demo_corpus.generate("title_generation", "en", "train", 800)))
    return path


def start(model_dir, train_file, out_dir):
    return subprocess.Popen(
        [sys.executable, "-m", "workflow_scripts.finetune", "--spec", json.dumps(SPEC), "--run-id", "resume-test",
         "--model", str(model_dir), "--data", f"en={train_file}", "--out-dir", str(out_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        # Ctrl-C as in a terminal: a suite run in the background (nohup, `&`) passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(process):
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def interrupt_after_first_checkpoint(process, out_dir, signum):
    state = out_dir / "resume" / "state.pt"
    deadline = time.time() + 120
    while not state.exists():
        assert process.poll() is None, "fine-tuning ended before its first checkpoint"
        assert time.time() < deadline, "no resumable state within 120 s"
        time.sleep(0.01)
    os.kill(process.pid, signum)
    return finish(process)


def weights(out_dir):
    return {path.parent.name: load_file(path) for path in sorted((out_dir / "checkpoints").glob("*/model.safetensors"))}


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, train_file, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("uninterrupted")
    code, output = finish(start(tiny_model_dir, train_file, out_dir))
    assert code == 0, output
    assert not (out_dir / "resume").exists()  # removed once the run is complete
    rates = pd.read_csv(out_dir / "train_log.tsv", sep="\t")["learning_rate"]  # linear decay: a resume must keep it
    assert list(rates) == pytest.approx([1e-3 * (400 - step) / 400 for step in range(400)])
    return out_dir


def assert_identical(out_dir, reference, steps=("step-000133", "step-000267", "step-000400")):
    ours, theirs = weights(out_dir), weights(reference)
    assert list(ours) == list(theirs) == list(steps)
    for name in ours:
        for key in theirs[name]:
            assert torch.equal(ours[name][key], theirs[name][key]), f"{name}: {key} differs"
    assert (out_dir / "train_log.tsv").read_text() == (reference / "train_log.tsv").read_text()


def proc_file(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # a process that ended meanwhile
        return b""


def assert_resumed(output: str, at_steps=None) -> int:
    """The rerun read the saved state and trained on from the step after it, not from step 1 again."""
    import re

    resumed = re.search(r"resumed from \S+ at step (\d+)", output)
    assert resumed, output
    step = int(resumed.group(1))
    first_trained = re.search(r": step (\d+)/\d+ ", output)
    assert step > 0 and (at_steps is None or step in at_steps), output
    assert first_trained and int(first_trained.group(1)) == step + 1, output
    return step


def test_sigkill_after_a_checkpoint_then_rerun_is_bit_identical(tiny_model_dir, train_file, uninterrupted, tmp_path):
    code, _ = interrupt_after_first_checkpoint(start(tiny_model_dir, train_file, tmp_path), tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (tmp_path / "run.json").exists() and (tmp_path / "resume" / "state.pt").exists()
    code, output = finish(start(tiny_model_dir, train_file, tmp_path))
    assert code == 0, output
    assert_resumed(output, at_steps=(133, 267))
    assert_identical(tmp_path, uninterrupted)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_state_exits_non_zero_and_resumes(tiny_model_dir, train_file, uninterrupted, tmp_path,
                                                                  signum):
    code, output = interrupt_after_first_checkpoint(start(tiny_model_dir, train_file, tmp_path), tmp_path, signum)
    assert code == 75, output
    assert f"stopped by signal {int(signum)}" in output
    code, output = finish(start(tiny_model_dir, train_file, tmp_path))
    assert code == 0, output
    assert_resumed(output)
    assert_identical(tmp_path, uninterrupted)


def test_killed_workflow_resumes_fine_tuning_when_run_again(tmp_path):
    """SIGKILL the whole Snakemake process group after the first checkpoint; the rerun (after clearing the
    stale lock, rerunning the incomplete job) resumes from the saved state and ends where an
    uninterrupted workflow ends."""
    from conftest import REPO, run_workflow, tiny_config, write_config

    config = tiny_config()
    config["tasks"] = {"title_generation": config["tasks"]["title_generation"]}
    config["experiments"] = [{"task": "title_generation", "sources": [["en"]], "targets": ["en"]}]
    config["train"].update(n_train=64, epochs=60, batch_size=8, checkpoints=3)   # 480 steps
    until = ("--until", "finetune")
    (tmp_path / "uninterrupted").mkdir()
    run_workflow(tmp_path / "uninterrupted", config, *until)

    workdir = tmp_path / "interrupted"
    workdir.mkdir()
    configfile = write_config(workdir, config)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                                "--directory", str(workdir), "--configfile", str(configfile), "--cores", "2",
                                "--resources", "gpu=2", *until], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 240
    while not list(workdir.glob("results/runs/*/resume/state.pt")):
        assert process.poll() is None, "the workflow ended before fine-tuning saved its first state"
        assert time.time() < deadline, "no resumable state within 240 s"
        time.sleep(0.05)
    # The job's shell has become the training process (exec): a SIGTERM reaches it with no bash to die first.
    trainer = next(pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                   if proc_file(pid, "cmdline").split(b"\0")[1:3] == [b"-m", b"workflow_scripts.finetune"])
    parent = int(proc_file(trainer, "stat").rsplit(b")", 1)[1].split()[1])
    assert b"snakemake" in proc_file(parent, "cmdline"), proc_file(parent, "cmdline")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not list(workdir.glob("results/runs/*/run.json"))

    run_workflow(workdir, config, "--unlock")
    run_workflow(workdir, config, "--rerun-incomplete", *until)
    log = next(workdir.glob("results/logs/finetune/*.log")).read_text()
    assert_resumed(log, at_steps=(160, 320))
    run_dir = next(workdir.glob("results/runs/*"))
    assert_identical(run_dir, tmp_path / "uninterrupted" / "results" / "runs" / run_dir.name,
                     steps=["step-000160", "step-000320", "step-000480"])


def test_fewer_steps_than_checkpoints_is_a_warning_in_run_json(tiny_model_dir, train_file, tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "n_train": 16, "epochs": 1, "checkpoints": 3}}  # 2 steps
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.finetune", "--spec", json.dumps(spec), "--run-id", "few-steps",
         "--model", str(tiny_model_dir), "--data", f"en={train_file}", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["checkpoints"] == [1, 2]
    assert any("2 training steps hold only 2 of the 3 checkpoints" in w for w in run["warnings"]), run["warnings"]


def test_a_second_trainer_of_the_same_run_stops_naming_the_first(tiny_model_dir, train_file, tmp_path):
    """Snakemake killed on its own leaves its fine-tuning job running; after --unlock a rerun starts the run
    again. The second trainer must not write the same checkpoints and resume state: it stops at once, naming the
    process that trains, and the first goes on."""
    first = start(tiny_model_dir, train_file, tmp_path)
    lock = tmp_path / ".finetune.lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().startswith("process")):
        assert first.poll() is None and time.time() < deadline, "the first trainer never took its lock"
        time.sleep(0.01)
    code, output = finish(start(tiny_model_dir, train_file, tmp_path))
    assert code == 1, output
    assert f"{tmp_path} is being trained by process {first.pid} on " in output, output
    assert "Traceback" not in output and "step 1/" not in output, output
    assert first.poll() is None, "the first trainer ended before the second was refused"
    first.kill()
    finish(first)
    code, output = finish(start(tiny_model_dir, train_file, tmp_path))  # the lock ends with its process
    assert code == 0, output


def test_a_finished_run_started_again_is_not_trained_again(uninterrupted, tiny_model_dir, train_file, tmp_path):
    """Snakemake stopped by a SIGINT of its own (or killed) while fine-tuning ran on to its end could not record the
    job's end: it runs the job again, deleting run.json and train_log.tsv first. The finished run writes them again
    from its record, the same bytes, without training."""
    import shutil

    out_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, out_dir)
    for name in ("run.json", "train_log.tsv"):
        (out_dir / name).unlink()
    code, output = finish(start(tiny_model_dir, train_file, out_dir))
    assert code == 0, output
    assert "finished before" in output and "nothing trained" in output and "step 1/" not in output, output
    for name in ("run.json", "train_log.tsv"):
        assert (out_dir / name).read_bytes() == (uninterrupted / name).read_bytes(), name
