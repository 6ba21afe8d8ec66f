import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def demo_config() -> dict:
    with open(REPO / "config.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def tiny_config(results: str = "results") -> dict:
    """The demo, shrunk so a whole run takes seconds: two tasks, three languages, few steps."""
    config = demo_config()
    config["results"] = results
    config["model"]["build"].update(vocab_size=400, d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=2,
                                    num_decoder_layers=1, tokenizer_sentences=500)
    config["tasks"] = {name: config["tasks"][name] for name in ("title_generation", "pos")}
    for task in config["tasks"].values():
        task["dataset"]["sizes"] = {"train": 64, "dev": 12, "test": 12}
        task["languages"] = ["en", "de", "zh"]
    config["experiments"] = [
        {"task": "title_generation", "sources": [["en"], ["en", "zh"]], "targets": ["en", "de", "zh"]},
        {"task": "pos", "sources": [["en"]], "targets": ["en", "de"]},
    ]
    config["train"].update(n_train=32, epochs=1, batch_size=8, checkpoints=2, max_source_length=64,
                           max_target_length=24)
    config["xlrs"].update(n_pairs=16)
    config["decode"].update(dev_size=6, test_size=6, max_new_tokens=12)
    return config


@pytest.fixture
def config():
    return copy.deepcopy(tiny_config())


def write_config(workdir: Path, config: dict) -> Path:
    path = Path(workdir) / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def dry_run(workdir: Path, config: dict) -> list[str]:
    """The output files Snakemake's own dry run plans to create, relative to workdir."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    configfile = write_config(workdir, config)
    planned: list[str] = []
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[configfile]),
                                snakefile=REPO / "Snakefile", workdir=Path(workdir))
        workflow.dag(DAGSettings()).execute_workflow(executor="dryrun", updated_files=planned)
    return sorted(os.path.relpath(os.path.join(workdir, p), workdir) for p in planned)


def stage_of(path: str) -> str:
    """Which rule writes an output path (the path layout of workflow_scripts/plan.py)."""
    parts = Path(path).parts
    if parts[1].startswith("summary-"):
        return "aggregate"
    if parts[1] in ("data", "cast", "models"):
        return {"data": "prepare", "cast": "cast", "models": "build_model"}[parts[1]]
    if parts[1] == "runs":
        return {"train_log.tsv": "finetune", "run.json": "finetune",
                "xlrs": "xlrs", "decode": "decode", "scores": "score", "select": "select"}[parts[3]]
    return parts[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from workflow_scripts.build_model import build

    out = tmp_path_factory.mktemp("model") / "m"
    build({"build": {"vocab_size": 300, "d_model": 16, "d_ff": 32, "d_kv": 8, "num_heads": 2, "num_layers": 1,
                     "num_decoder_layers": 1, "dropout_rate": 0.0, "seed": 0, "tokenizer_sentences": 200},
           "tokenizer_languages": ["en", "zh"]}, out)
    return out


def run_workflow(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    """The real workflow, as a user runs it, on `config` in `workdir`."""
    configfile = write_config(workdir, config)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(configfile), "--cores", "2", "--resources", "gpu=2", "--quiet", "rules", *extra],
        capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """A complete run of the tiny workflow (shared by the DAG, determinism and fault tests)."""
    workdir = tmp_path_factory.mktemp("study")
    run_workflow(workdir, tiny_config())
    return workdir
