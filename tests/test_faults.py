"""Faults and determinism: the same result twice, a lock against two invocations, safe inputs, readable logs."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_workflow, tiny_config, write_config

COMPARED = ("*.tsv", "*.jsonl", "*.csv", "*.md", "*.png", "*.safetensors", "run.json", "*.meta.json")


def result_files(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    files = [p for pattern in COMPARED for p in results.rglob(pattern) if "logs" not in p.parts]
    return {str(p.relative_to(results)): p.read_bytes() for p in files}


def test_two_runs_from_clean_results_are_byte_identical(finished_study, tmp_path):
    """The tiny study's two-source run made again from clean results (its task alone: the same digests, so the
    same paths) gives the same bytes, from the data and the built model to its scores; the tables and figures
    made again from the first study's measurements are the first study's."""
    config = tiny_config()
    config["tasks"] = {"title_generation": config["tasks"]["title_generation"]}
    config["experiments"] = [{**config["experiments"][0], "sources": [["en", "zh"]]}]
    run_workflow(tmp_path, config)
    first = result_files(finished_study)
    second = {name: data for name, data in result_files(tmp_path).items() if not name.startswith("summary-")}
    assert second.keys() <= first.keys()
    for made in ("/decode/test/", "/scores/dev/", "/checkpoints/", "models/", "cast/title_generation/zh/"):
        assert any(made in name for name in second), made
    assert not [name for name in second if first[name] != second[name]]

    summary = next((finished_study / "results").glob("summary-*"))
    for stage, out in (("aggregate", "tables"), ("figures", "figures")):
        subprocess.run([sys.executable, "-m", f"workflow_scripts.{stage}", "--manifest", summary / "manifest.json",
                        "--out-dir", tmp_path / out], cwd=finished_study, check=True, capture_output=True)
        made = {p.name: p.read_bytes() for p in (tmp_path / out).iterdir()}
        kept = {p.name: p.read_bytes() for p in (summary / out).iterdir() if p.name != ".snakemake_timestamp"}
        assert made and made == kept, stage


def snakemake(workdir, *args, **kwargs):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
                             "--cores", "1", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True, **kwargs)


def test_a_second_invocation_is_refused_and_a_stale_lock_can_be_cleared(tmp_path):
    write_config(tmp_path, tiny_config())
    first = snakemake(tmp_path)
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 60
    while not (locks.exists() and any(locks.iterdir())):
        assert first.poll() is None and time.time() < deadline, "the first invocation never took its lock"
        time.sleep(0.1)
    output, _ = snakemake(tmp_path).communicate(timeout=120)
    assert "Directory cannot be locked" in output
    os.killpg(first.pid, signal.SIGKILL)  # the first dies without releasing its lock: a stale lock
    first.wait()
    output, _ = snakemake(tmp_path).communicate(timeout=120)
    assert "Directory cannot be locked" in output  # still refused: the lock is stale, not gone
    output, _ = snakemake(tmp_path, "--unlock").communicate(timeout=120)
    assert "Unlocked working directory" in output
    assert not locks.exists() or not any(locks.iterdir())


def test_paths_with_spaces_quotes_and_semicolons_reach_no_shell_unquoted(tmp_path):
    from workflow_scripts import demo_corpus
    from workflow_scripts.files import write_jsonl

    data = tmp_path / "my data; rm -rf 'x' \"y\""
    for lang in ("en", "de"):
        for split in ("train", "dev", "test"):
            write_jsonl(data / lang / f"{split}.jsonl", demo_corpus.generate("pos", lang, split, 20))
    config = tiny_config()
    config["tasks"] = {"pos": {"kind": "tagging", "languages": ["en", "de"],
                               "dataset": {"loader": "jsonl", "path": str(data / "{lang}" / "{split}.jsonl")}}}
    config["experiments"] = [{"task": "pos", "sources": [["en"]], "targets": ["de"]}]
    run_workflow(tmp_path, config, "--until", "cast")
    cast = list((tmp_path / "results" / "cast" / "pos" / "de").glob("test-*.jsonl"))
    assert len(cast) == 1 and cast[0].read_text().count("\n") == 20
    assert data.exists()


def test_no_unsafe_loading_anywhere_in_the_code():
    code = {p: p.read_text() for p in (REPO / "workflow_scripts").rglob("*.py")}
    for path, text in code.items():
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path.name}: {call}"
        assert "trust_remote_code=True" not in text, path.name
        assert "pickle" not in text, path.name


def test_job_logs_are_lines_without_progress_bars(finished_study):
    """A job's log is a file: it starts with where the job ran, and no progress bar (tqdm's carriage returns,
    transformers' loading bars) fills it; training reports its steps as lines."""
    logs = sorted((finished_study / "results" / "logs").rglob("*.log"))
    stages = {path.relative_to(finished_study / "results" / "logs").parts[0] for path in logs}
    assert {"finetune", "xlrs", "decode", "score"} <= stages
    for path in logs:
        text = path.read_text()
        assert "\r" not in text and "it/s" not in text, path
        if "manifest" not in path.parts:  # the manifest is written by Snakemake itself and logs nothing
            assert re.match(r"\S+ \S+ INFO \w+ started on ", text), path
    for path in (finished_study / "results" / "logs" / "finetune").glob("*.log"):
        steps = re.findall(r"step (\d+)/4 \(epoch 0\): loss [\d.]+ \(mean of \d+ steps?\)", path.read_text())
        assert steps[0] == "1" and path.read_text().count("; checkpoint saved") == 2, path
    # XLRS and decoding: a line per checkpoint (XLRS also step 0; test sets only the selected checkpoints)
    for path in (finished_study / "results" / "logs" / "xlrs").rglob("*.log"):
        found = re.findall(r"step (\d+): last-layer XLRS (?:en|zh)-\w+ [\d.]+.* \(16 pairs; ", path.read_text())
        assert found == ["0", "2", "4"], path
    for path in (finished_study / "results" / "logs" / "decode").rglob("dev/*.log"):
        found = re.findall(r"step (\d+): 6 inputs decoded in [\d.]+ s with the load \(\d+ cut", path.read_text())
        assert found == ["2", "4"], path
