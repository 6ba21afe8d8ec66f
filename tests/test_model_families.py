"""Any seq2seq model whose encoder can be mean-pooled works where mT5 does: the whole workflow on tiny
local umT5 and ByT5 models, loaded through model.path like a hub checkpoint."""
import json

import pytest
import torch

from conftest import run_workflow, tiny_config
from workflow_scripts import modeling
from workflow_scripts.build_model import untie_output_layer


def umt5(tiny_model_dir, out):
    from transformers import UMT5Config, UMT5ForConditionalGeneration

    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    torch.manual_seed(0)
    model = UMT5ForConditionalGeneration(UMT5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8,
                                                    num_heads=2, num_layers=1, num_decoder_layers=1))
    modeling.save_model(untie_output_layer(model), tokenizer, out)


def byt5(tiny_model_dir, out):
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = ByT5Tokenizer()  # bytes plus 125 sentinels: no vocabulary file to train
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8, num_heads=2,
                                                num_layers=1, num_decoder_layers=1, feed_forward_proj="gated-gelu",
                                                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    modeling.save_model(untie_output_layer(model), tokenizer, out)


@pytest.mark.parametrize("family, build", [("umt5", umt5), ("t5", byt5)])
def test_the_stages_run_on_another_model_family(family, build, tiny_model_dir, tmp_path):
    build(tiny_model_dir, tmp_path / "model")
    config = tiny_config()
    del config["model"]["build"]
    config["model"] = {"name": f"local-{family}", "path": str(tmp_path / "model")}
    config["tasks"] = {"paraphrase": {**config["tasks"]["pos"], "kind": "paraphrase",
                                      "dataset": {"loader": "demo", "name": "paraphrase",
                                                  "sizes": {"train": 32, "dev": 6, "test": 6}}}}
    config["experiments"] = [{"task": "paraphrase", "sources": [["en"]], "targets": ["en", "de"]}]
    config["train"].update(n_train=16, checkpoints=2, max_source_length=96, max_target_length=8)
    config["xlrs"].update(n_pairs=4)
    config["decode"].update(max_new_tokens=6)
    run_workflow(tmp_path, config)
    run = json.loads(next((tmp_path / "results" / "runs").glob("*/run.json")).read_text())
    assert run["model_type"] == family
    assert list((tmp_path / "results").glob("summary-*/tables/scores.csv"))
    assert len(list((tmp_path / "results" / "runs").glob("*/xlrs/de-*.tsv"))) == 1


def test_a_hub_model_is_loaded_at_the_revision_its_digests_name(tmp_path, monkeypatch):
    import subprocess
    import sys

    from transformers import AutoConfig, AutoTokenizer

    from conftest import REPO, write_config

    config = tiny_config()
    config["model"] = {"name": "google/mt5-base", "revision": "0123abcd"}
    write_config(tmp_path, config)
    planned = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "-n", "-p",
                              "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                             capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr[-2000:]
    commands = [line for line in planned.stdout.splitlines()
                if any(f"workflow_scripts.{stage} " in line for stage in ("finetune", "xlrs", "score"))]
    assert commands and all("--model google/mt5-base --model-revision 0123abcd " in line for line in commands)

    asked = {}

    def from_pretrained(ref, **kwargs):
        asked.update(kwargs)
        raise OSError("not in the cache")

    for auto, load in ((AutoTokenizer, modeling.load_tokenizer), (AutoConfig, modeling.load_model)):
        monkeypatch.setattr(auto, "from_pretrained", from_pretrained)
        asked.clear()
        with pytest.raises(modeling.ModelError, match="google/mt5-base"):
            load("google/mt5-base", revision="0123abcd")
        assert asked["revision"] == "0123abcd"
    assert modeling.at_revision(str(tmp_path), "0123abcd") == {}  # a local directory has no revisions
