"""Bad input gets a clear error naming the file, key, language or step; nothing computed is lost."""
import json
import re

import pytest
import torch

from workflow_scripts import decode, finetune, modeling, prepare, tasks
from workflow_scripts.files import DataError, write_jsonl


def prepare_spec(tmp_path, split, task="pos", kind="tagging"):
    return {"task": task, "kind": kind, "lang": "de", "split": split,
            "dataset": {"loader": "jsonl", "path": str(tmp_path / "{lang}" / "{split}.jsonl")}}


def write_splits(tmp_path, records, lang="de"):
    for split in ("train", "dev", "test"):
        write_jsonl(tmp_path / lang / f"{split}.jsonl", records)


GOOD_POS = [{"id": "1", "tokens": ["Der", "Hund"], "tags": ["DET", "NOUN"]}]


def test_empty_split_names_task_language_and_split(tmp_path):
    write_splits(tmp_path, GOOD_POS)
    (tmp_path / "de" / "dev.jsonl").write_text("")
    with pytest.raises(DataError, match=r"task 'pos', language 'de', split 'dev': .*dev.jsonl: empty"):
        prepare.prepare(prepare_spec(tmp_path, "dev"))


def test_non_utf8_bytes_name_the_file(tmp_path):
    write_splits(tmp_path, GOOD_POS)
    (tmp_path / "de" / "train.jsonl").write_bytes(b'{"id": "1", "tokens": ["M\xfcnchen"], "tags": ["PROPN"]}\n')
    with pytest.raises(DataError, match=r"split 'train': .*train.jsonl: not UTF-8"):
        prepare.prepare(prepare_spec(tmp_path, "train"))


def test_malformed_json_names_file_and_line(tmp_path):
    write_splits(tmp_path, GOOD_POS)
    (tmp_path / "de" / "test.jsonl").write_text(json.dumps(GOOD_POS[0]) + "\n{oops\n")
    with pytest.raises(DataError, match=r"test.jsonl:2: malformed JSON"):
        prepare.prepare(prepare_spec(tmp_path, "test"))


def test_a_word_list_cell_that_is_broken_json_names_file_and_row(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / "de").mkdir(exist_ok=True)
        (tmp_path / "de" / f"{split}.tsv").write_text('id\ttokens\ttags\n1\t["Der", "Hund"]\tDET NOUN\n'
                                                      '2\t["Die\tDET\n', encoding="utf-8")
    spec = {**prepare_spec(tmp_path, "dev"),
            "dataset": {"loader": "files", "path": str(tmp_path / "{lang}" / "{split}.tsv")}}
    with pytest.raises(DataError, match=r"dev.tsv: row 2: a list of words that is not valid JSON"):
        prepare.prepare(spec)


def test_a_demo_size_beyond_the_corpus_names_the_key():
    spec = {"task": "pos", "kind": "tagging", "lang": "de", "split": "test",
            "dataset": {"loader": "demo", "name": "pos", "sizes": {"test": 10 ** 9}}}
    with pytest.raises(DataError, match=r"demo dataset 'pos', de test: dataset.sizes.test: n=1000000000 exceeds"):
        prepare.prepare(spec)


def test_missing_column_is_named_with_the_file_and_the_columns_it_has(tmp_path):
    write_splits(tmp_path, [{"id": "1", "tokens": ["a"]}])
    with pytest.raises(DataError, match=r"split 'train' \(.*/de/train.jsonl\): record 1 lacks column\(s\) tags "
                                        r"\(it has id, tokens\); a jsonl record .* loader 'files' and dataset.columns"):
        prepare.prepare(prepare_spec(tmp_path, "train"))


def test_a_local_table_without_our_columns_or_rows_is_named(tmp_path):
    (tmp_path / "de").mkdir()
    spec = {"task": "tg", "kind": "generation", "lang": "de", "split": "dev",
            "dataset": {"loader": "files", "path": str(tmp_path / "{lang}" / "{split}.tsv")}}
    (tmp_path / "de" / "dev.tsv").write_text("story\tending\nEs war einmal.\tEnde.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"de/dev.tsv\): record 1 lacks column\(s\) document, summary "
                                        r".*dataset.columns"):
        prepare.prepare(spec)
    (tmp_path / "de" / "dev.tsv").write_text("story\tending\n", encoding="utf-8")
    spec["dataset"]["columns"] = {"document": "story", "summary": "ending"}
    with pytest.raises(DataError, match=r"de/dev.tsv\): the split is empty"):
        prepare.prepare(spec)


def test_decoder_only_model_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(tmp_path / "gpt")
    with pytest.raises(modeling.ModelError, match=r"gpt.* gpt2 model without an encoder.*seq2seq"):
        modeling.load_model(str(tmp_path / "gpt"))


def test_hub_id_offline_says_how_to_fix_it():
    with pytest.raises(modeling.ModelError, match=r"google/mt5-base.*HF_HUB_OFFLINE.*HF_HOME"):
        modeling.load_model("google/mt5-base")


def test_a_hub_model_cached_without_its_weights_gets_the_cache_advice(tiny_model_dir, tmp_path):
    """Its config is cached, its weights are not: the OSError of from_pretrained is the cache's, not a damaged
    file's, and the advice must not be to delete a run."""
    import os
    import shutil
    import subprocess
    import sys

    snapshot = tmp_path / "hub" / "models--org--cached-config" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    shutil.copy(tiny_model_dir / "config.json", snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    code = "from workflow_scripts import modeling\ntry:\n    modeling.load_model('org/cached-config')\n" \
           "except modeling.ModelError as err:\n    print(err)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}).stdout
    assert "model 'org/cached-config': it is neither a local directory nor in the Hugging Face cache" in found
    assert "delete" not in found


def word_level_tokenizer(directory, sentinels: int) -> str:
    """A saved tokenizer with two words and the sentinels <extra_id_0> .. <extra_id_{sentinels-1}>."""
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "a", "b", *(f"<extra_id_{i}>" for i in range(sentinels))]
    backend = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>").save_pretrained(directory)
    return str(directory)


def test_tokenizer_without_sentinels_is_refused(tmp_path):
    with pytest.raises(modeling.ModelError, match=r"lacks the sentinel token <extra_id_0>"):
        modeling.load_tokenizer(word_level_tokenizer(tmp_path / "tok", sentinels=0), sentinels=1)


def test_a_model_directory_without_its_tokenizer_files_is_refused(tiny_model_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "m" / name).unlink()  # transformers would build a stand-in that maps every word to <unk>
    with pytest.raises(modeling.ModelError, match=r"m': its tokenizer has no vocabulary beyond its 104 special"):
        modeling.load_tokenizer(str(tmp_path / "m"))


@pytest.mark.parametrize("damage", ["empty", "broken"])
def test_an_unreadable_tokenizer_names_its_files(tiny_model_dir, tmp_path, damage):
    import shutil

    if damage == "empty":
        (tmp_path / "m").mkdir()
        problem = r"it holds no tokenizer \(tokenizer.json or spiece.model or tokenizer_config.json\)"
    else:
        shutil.copytree(tiny_model_dir, tmp_path / "m")
        (tmp_path / "m" / "tokenizer.json").write_text("{ broken")
        problem = r"its tokenizer files \(tokenizer.json, tokenizer_config.json\) cannot be read \(Expecting property"
    with pytest.raises(modeling.ModelError, match=rf"m': {problem}.*; copy them from the model it came from$"):
        modeling.load_tokenizer(str(tmp_path / "m"))


def test_a_config_json_of_another_model_names_a_tensor_and_both_sizes(tiny_model_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "d_model": 2 * config["d_model"]}))
    sizes = r"\(\S+: \[\d+, 16\] in model.safetensors, \[\d+, 32\] by config.json\)"
    with pytest.raises(modeling.ModelError, match=rf"m': its weights do not have the sizes its config.json gives "
                                                  rf"{sizes}"):
        modeling.load_model(str(tmp_path / "m"), device=torch.device("cpu"))


def test_a_tokenizer_larger_than_the_models_vocabulary_stops_the_job_before_decoding(tiny_model_dir, tmp_path,
                                                                                     monkeypatch, capsys):
    import sys

    from workflow_scripts import cli

    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
    model.resize_token_embeddings(100)  # as if the tokenizer files were copied from a larger model
    model.save_pretrained(tmp_path / "small")
    modeling.load_tokenizer(str(tiny_model_dir)).save_pretrained(tmp_path / "small")
    argv, out = decode_job(tmp_path, tmp_path / "small", ["Hallo"], [1], batch_size=2)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit):
        cli.run(decode.main)
    assert re.search(r"step-000001': its tokenizer has \d+ tokens but its embeddings only 100 \(config.json's "
                     r"vocab_size 100\): the tokenizer files come from another model", capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("field, value, problem", [
    ("summary", None, "summary is empty (null)"), ("document", 3, "document is not text but int 3"),
    ("tags", "DET NOUN", "tags must be a list of strings, not 'DET NOUN'"), ("tokens", ["Der", None], "tokens must"),
    ("id", [1], "its id must be text or a whole number, not [1]"), ("id", None, "its id must be text")])
def test_null_or_mistyped_fields_name_the_example(field, value, problem):
    from workflow_scripts import tasks

    kind = tasks.kind("tagging" if field in ("tokens", "tags") else "generation")
    record = {"id": "7", "document": "d", "summary": "s", "tokens": ["Der", "Hund"], "tags": ["DET", "NOUN"]}
    named = re.escape(repr(value) if field == "id" else "'7'")
    with pytest.raises(DataError, match=rf"where: example {named}: {re.escape(problem)}"):
        tasks.validate_records(kind, [{**record, field: value}], "where")


def test_a_qa_answer_start_that_is_not_a_number_is_named():
    from workflow_scripts import tasks

    record = {"id": "q1", "context": "c", "question": "q", "answer_text": "c", "answer_start": "one"}
    with pytest.raises(DataError, match=r"example 'q1': answer_start 'one' is not a character offset"):
        tasks.validate_records(tasks.kind("qa"), [record], "where")


def test_tagging_needs_all_100_sentinels(tiny_model_dir, tmp_path):
    """A tagging target uses a sentinel per word, up to 100: half of them is not enough."""
    half = word_level_tokenizer(tmp_path / "tok", sentinels=50)
    assert modeling.load_tokenizer(half, sentinels=50).convert_tokens_to_ids("<extra_id_49>") == 52
    with pytest.raises(modeling.ModelError, match=r"lacks the sentinel token <extra_id_50>"):
        modeling.load_tokenizer(half, sentinels=100)
    assert modeling.load_tokenizer(str(tiny_model_dir), sentinels=100).convert_tokens_to_ids("<extra_id_99>") > 0


def title_generation_run(tmp_path) -> dict:
    """The spec of a 16-step run (checkpoints at 4, 8, 12, 16) on 64 demo examples written under tmp_path/en."""
    from workflow_scripts import demo_corpus
    from workflow_scripts.cast import cast_records

    write_jsonl(tmp_path / "en" / "train.jsonl",
                cast_records("generation", demo_corpus.generate("title_generation", "en", "train", 64)))
    return {"task": "title_generation", "kind": "generation", "sources": ["en"], "seed": 1,
            "train": {"n_train": 64, "epochs": 2, "batch_size": 8, "micro_batch_size": 8, "learning_rate": 1e-3,
                      "weight_decay": 0.0, "max_source_length": 64, "max_target_length": 16, "checkpoints": 4,
                      "max_grad_norm": 1.0, "lr_schedule": "linear"}}


def english_train_file(tmp_path) -> dict:
    return {"en": tmp_path / "en" / "train.jsonl"}


def test_nan_loss_stops_with_run_step_and_last_good_checkpoint_kept(tiny_model_dir, tmp_path, monkeypatch):
    real_cross_entropy, calls = torch.nn.functional.cross_entropy, []

    def diverging(*args, **kwargs):  # the loss turns NaN at the 7th batch, as a diverging run's would
        calls.append(1)
        loss = real_cross_entropy(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 7 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", diverging)
    with pytest.raises(FloatingPointError) as caught:
        finetune.train(title_generation_run(tmp_path), str(tiny_model_dir), english_train_file(tmp_path),
                       tmp_path / "run", "tg-en-s1-abc")
    # 16 steps, checkpoints at 4, 8, 12, 16: step 7 diverges, step 4 is the last good one
    kept = tmp_path / "run" / "checkpoints" / "step-000004"
    assert str(caught.value) == (f"run tg-en-s1-abc: loss is nan at step 7 (epoch 0); last good checkpoint: {kept} "
                                 "(kept)")
    assert (kept / "model.safetensors").exists()


def test_a_non_finite_gradient_behind_a_finite_loss_stops_the_run(tiny_model_dir, tmp_path, monkeypatch):
    """A bf16 overflow in the backward pass leaves the loss finite: the gradient norm is checked too."""
    real_cross_entropy, calls = torch.nn.functional.cross_entropy, []

    class InfiniteGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, loss):
            return loss.view_as(loss)

        @staticmethod
        def backward(ctx, grad):
            return grad * float("inf")

    def overflowing(*args, **kwargs):
        calls.append(1)
        loss = real_cross_entropy(*args, **kwargs)
        return InfiniteGradient.apply(loss) if len(calls) >= 7 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", overflowing)
    expected = (r"^run tg-en-s1-abc: gradient norm is (inf|nan) \(loss \d+\.\d{4}\) at step 7 \(epoch 0\); "
                r"last good checkpoint: .*step-000004 \(kept\)$")
    with pytest.raises(FloatingPointError, match=expected):
        finetune.train(title_generation_run(tmp_path), str(tiny_model_dir), english_train_file(tmp_path),
                       tmp_path / "run", "tg-en-s1-abc")


def test_an_unreadable_resume_state_is_named(tiny_model_dir, tmp_path):
    state = tmp_path / "run" / "resume" / "state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataError, match=rf"{re.escape(str(state))}: this run's resume state cannot be read .*delete"):
        finetune.train(title_generation_run(tmp_path), str(tiny_model_dir), english_train_file(tmp_path),
                       tmp_path / "run", "tg-en-s1-abc")


def test_a_deleted_checkpoint_of_a_finished_run_is_named(tiny_model_dir, tmp_path):
    """run.json lists step 4 and 8; step 8's directory was deleted to free disk: XLRS and decoding name it."""
    from workflow_scripts import xlrs
    from workflow_scripts.files import checkpoint_path

    run_dir = tmp_path / "runs" / "tg-en-s1-0123456789"
    (run_dir / "checkpoints" / "step-000004").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"checkpoints": [4, 8]}))
    with pytest.raises(DataError, match=r"step-000008: a checkpoint of run tg-en-s1-0123456789 is missing "
                                        r"\(run.json lists it\); delete .*tg-en-s1-0123456789 to train the run again"):
        xlrs.checkpoints_of(run_dir, str(tiny_model_dir))
    assert checkpoint_path(run_dir, 4) == run_dir / "checkpoints" / "step-000004"
    assert not checkpoint_path(run_dir, 12, saved=False).exists()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_truncated_weights_name_the_model(tiny_model_dir, tmp_path, damage):
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(modeling.ModelError, match=rf"model '{re.escape(str(tmp_path / 'm'))}': its weights cannot be"):
        modeling.load_model(str(tmp_path / "m"), device=torch.device("cpu"))
    if damage == "truncated":
        model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
        with pytest.raises(modeling.ModelError, match=r"its weights cannot be read"):
            modeling.load_weights_into(model, str(tmp_path / "m"))


def test_an_empty_or_broken_table_names_its_file(tmp_path):
    from workflow_scripts.files import read_tsv

    (tmp_path / "empty.tsv").write_text("\n")
    (tmp_path / "ragged.tsv").write_text("step\tf1\n1\t2\n3\t4\t5\t6\n")
    for name in ("empty.tsv", "ragged.tsv", "absent.tsv"):
        with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / name))}: "):
            read_tsv(tmp_path / name)


def test_a_text_or_nan_where_a_table_needs_numbers_names_the_file_column_and_row(tmp_path):
    from workflow_scripts.files import read_tsv

    (tmp_path / "scores.tsv").write_text("step\trougeL\n1\t20.5\n2\t\n")
    (tmp_path / "xlrs.tsv").write_text("step\txlrs\n1\t0.5\n2\tabc\n")
    assert read_tsv(tmp_path / "scores.tsv", ("rougeL",)).shape == (2, 2)  # only `numbers` are checked
    with pytest.raises(DataError, match=r"scores.tsv: column 'rougeL' holds nan in row 2, not a finite number; "
                                        r"delete it to have the job that wrote it run again"):
        read_tsv(tmp_path / "scores.tsv", numbers=("step", "rougeL"))
    with pytest.raises(DataError, match=r"xlrs.tsv: column 'xlrs' holds 'abc' in row 2"):
        read_tsv(tmp_path / "xlrs.tsv", numbers=("step", "xlrs"))
    with pytest.raises(DataError, match=r"xlrs.tsv: no column 'loss' \(it has step, xlrs\)"):
        read_tsv(tmp_path / "xlrs.tsv", numbers=("step", "loss"))


def test_select_refuses_a_dev_table_without_scores_and_a_selection_without_its_picks(tmp_path, monkeypatch, capsys):
    import sys

    from workflow_scripts import cli, select
    from workflow_scripts.files import read_json

    (tmp_path / "en.tsv").write_text("step\trougeL\n1\t20.5\n2\t30\n")
    (tmp_path / "de.tsv").write_text("step\trougeL\n")
    monkeypatch.setattr(sys, "argv", ["select", "--spec", json.dumps({"metric": "rougeL"}), "--source-dev",
                                      str(tmp_path / "en.tsv"), "--target-dev", str(tmp_path / "de.tsv"), "--out",
                                      str(tmp_path / "select.json")])
    with pytest.raises(SystemExit):
        cli.run(select.main)
    assert f"error: {tmp_path / 'de.tsv'}: no scores in it; delete it" in capsys.readouterr().err
    (tmp_path / "select.json").write_text('{"spec": {}}')
    with pytest.raises(DataError, match=r"select.json: no 'selection' in it; delete it"):
        read_json(tmp_path / "select.json", required=("selection",))


def test_a_broken_or_missing_json_output_names_its_file_and_the_remedy(tmp_path):
    from workflow_scripts.files import read_json

    (tmp_path / "run.json").write_text('{"checkpoints": [1, 2')
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'run.json'))}: not valid UTF-8 JSON .*"
                                        "delete it to have the job that wrote it run again"):
        read_json(tmp_path / "run.json")
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'absent.json'))}: file does not exist"):
        read_json(tmp_path / "absent.json")


def test_score_and_select_name_inputs_of_another_kind_or_metric(tmp_path, monkeypatch, capsys):
    import sys

    from workflow_scripts import cli, score, select

    decodes = tmp_path / "decodes.jsonl"
    write_jsonl(decodes, [{"step": 1, "prediction": "<extra_id_0>Yes.", "record": {"id": "1", "label": 1}}])
    monkeypatch.setattr(sys, "argv", ["score", "--spec", json.dumps({"kind": "tagging", "lang": "de"}), "--decodes",
                                      str(decodes), "--model", "unused", "--out", str(tmp_path / "s.tsv")])
    with pytest.raises(SystemExit):
        cli.run(score.main)
    error = capsys.readouterr().err
    assert f"error: {decodes} (tagging examples): record 1 lacks column(s) tokens, tags" in error
    dev = tmp_path / "dev.tsv"
    dev.write_text("step\tlang\taccuracy\n1\tde\t0.5\n")
    monkeypatch.setattr(sys, "argv", ["select", "--spec", json.dumps({"metric": "f1"}), "--source-dev", str(dev),
                                      "--target-dev", str(dev), "--out", str(tmp_path / "sel.json")])
    with pytest.raises(SystemExit):
        cli.run(select.main)
    assert f"error: {dev}: no column 'f1' (it has step, lang, accuracy)" in capsys.readouterr().err


def test_over_long_inputs_are_truncated_and_counted(tiny_model_dir):
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu")).eval()
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    inputs = ["short", "a much longer input " * 20, ""]
    predictions, truncated = decode.generate(model, tokenizer, inputs, batch_size=2, num_beams=1,
                                             max_new_tokens=4, max_source_length=16)
    assert truncated == 1 and len(predictions) == 3


def test_inputs_are_cut_as_the_tokenizer_cuts_them(tiny_model_dir):
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    inputs = ["short", "a much longer input " * 20, "", "another input that is too long for sixteen tokens " * 3]
    rows, cut = modeling.tokenize(tokenizer, inputs, 16)
    assert rows == tokenizer(inputs, max_length=16, truncation=True)["input_ids"]
    assert cut == 2 and len(rows[1]) == 16 and rows[1][-1] == tokenizer.eos_token_id


def test_a_cut_generation_input_keeps_the_end_of_its_template(tiny_model_dir):
    """'story: {document} title: <extra_id_0>': a long document loses its end, never the prompt and sentinel."""
    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    generation = tasks.kind("generation")
    text = generation.cast({"document": "a much longer input " * 20, "summary": "x"})["input"]
    whole = tokenizer(text)["input_ids"]
    (row,), cut = modeling.tokenize(tokenizer, [text], 16, generation.tail)
    end = len(tokenizer(generation.tail, add_special_tokens=False)["input_ids"]) + 1  # and </s>
    assert cut == 1 and len(row) == 16
    assert row == whole[:16 - end] + whole[-end:]
    assert tokenizer.decode(row).replace(" ", "").endswith("title:<extra_id_0></s>")
    pairs, counts = finetune.encode_pairs(tokenizer, [{"input": text, "target": "<extra_id_0>x"}],
                                          {"max_source_length": 16, "max_target_length": 2}, generation.tail)
    assert pairs[0][0] == row and len(pairs[0][1]) == 2 and counts == {"inputs": 1, "targets": 1}


def run_of_copies(tmp_path, model_dir, steps: list[int]):
    """A finished run's directory whose checkpoints at `steps` are copies of model_dir."""
    import shutil

    run_dir = tmp_path / "run"
    for step in steps:
        shutil.copytree(model_dir, run_dir / "checkpoints" / f"step-{step:06d}")
    (run_dir / "run.json").write_text(json.dumps({"checkpoints": steps}))
    return run_dir


def decode_job(tmp_path, model_dir, inputs: list[str], steps: list[int], batch_size: int):
    """The command line of a dev-set decode job over inputs at `steps` of a run of copies, and its output path."""
    write_jsonl(tmp_path / "cast" / "dev.jsonl", [{"id": str(i), "input": text, "target": "x", "record": {}}
                                                  for i, text in enumerate(inputs)])
    spec = {"split": "dev", "kind": "generation", "size": len(inputs), "num_beams": 1, "max_new_tokens": 4,
            "max_source_length": 16}
    out = tmp_path / "decode.out"
    return ["decode", "--spec", json.dumps(spec), "--run-dir", str(run_of_copies(tmp_path, model_dir, steps)),
            "--data", str(tmp_path / "cast" / "dev.jsonl"), "--batch-size", str(batch_size), "--out", str(out)], out


def test_a_decode_job_tokenizes_its_inputs_once_for_all_checkpoints(tiny_model_dir, tmp_path, monkeypatch):
    import sys

    from workflow_scripts import cli

    inputs = ["Hallo Welt", "a much longer input " * 20, "Bonjour"]
    calls, real_tokenize = [], modeling.tokenize
    monkeypatch.setattr(modeling, "tokenize", lambda *args: calls.append(1) or real_tokenize(*args))
    argv, out = decode_job(tmp_path, tiny_model_dir, inputs, [1, 2], batch_size=2)
    monkeypatch.setattr(sys, "argv", argv)
    cli.run(decode.main)
    assert len(calls) == 1
    model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu")).eval()
    expected, _ = decode.generate(model, modeling.load_tokenizer(str(tiny_model_dir)), inputs, 2, 1, 4, 16)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["step"], r["prediction"]) for r in records] == [(step, p) for step in (1, 2) for p in expected]
    assert json.loads(out.with_suffix(".meta.json").read_text())["truncated_inputs"] == 1


def test_a_decode_job_run_again_decodes_only_the_checkpoints_it_lacks(tiny_model_dir, tmp_path, monkeypatch):
    import sys

    from workflow_scripts import cli

    argv, out = decode_job(tmp_path, tiny_model_dir, ["Hallo Welt", "Bonjour"], [1, 2, 3], batch_size=2)
    monkeypatch.setattr(sys, "argv", argv)
    cli.run(decode.main)
    uninterrupted = out.read_text()
    out.unlink()
    decoded, real_generate = [], decode.generate_from_ids

    def generate_until_step_3(*args):  # a job failing (or killed) while it decodes the third checkpoint
        if len(decoded) == 2:
            raise RuntimeError("the node went away")
        decoded.append(1)
        return real_generate(*args)

    monkeypatch.setattr(decode, "generate_from_ids", generate_until_step_3)
    with pytest.raises(RuntimeError, match="the node went away"):
        cli.run(decode.main)
    assert not out.exists() and sorted(p.name for p in decode.decoded_steps_dir(out).iterdir()) == [
        "000001.jsonl", "000002.jsonl"]
    decoded.clear()
    monkeypatch.setattr(decode, "generate_from_ids", lambda *args: decoded.append(1) or real_generate(*args))
    cli.run(decode.main)
    assert len(decoded) == 1 and out.read_text() == uninterrupted
    assert not decode.decoded_steps_dir(out).exists()


def out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
                                      "of 23.6 GiB of which 1.1 GiB is free.\nInclude the traceback...")


def test_out_of_memory_in_training_names_the_micro_batch_size(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(finetune, "train_step", out_of_memory)
    with pytest.raises(modeling.ModelError) as caught:
        finetune.train(title_generation_run(tmp_path), str(tiny_model_dir), english_train_file(tmp_path),
                       tmp_path / "run", "tg-en-s1-abc")
    assert str(caught.value) == (
        "run tg-en-s1-abc at step 1: out of GPU memory at train.micro_batch_size 8 (CUDA out of memory. Tried to "
        "allocate 2.00 GiB. GPU 0 has a total capacity of 23.6 GiB of which 1.1 GiB is free.); lower "
        "train.micro_batch_size in the config to a divisor of train.batch_size 8: the same batches, through "
        "gradient accumulation, in a new run (it is in the run's digest)")


@pytest.mark.parametrize("stage", ["decode", "xlrs"])
def test_out_of_memory_in_decoding_and_xlrs_names_the_batch_size(stage, tiny_model_dir, tmp_path, monkeypatch,
                                                                 capsys):
    import sys

    from workflow_scripts import cli, xlrs

    if stage == "decode":
        argv, out = decode_job(tmp_path, tiny_model_dir, ["Hallo"], [1], batch_size=256)
        monkeypatch.setattr(decode, "generate_from_ids", out_of_memory)
    else:
        (tmp_path / "parallel.tsv").write_text("en\tde\nOne.\tEins.\n", encoding="utf-8")
        spec = {"parallel": {"loader": "file", "path": str(tmp_path / "parallel.tsv")}, "n_pairs": 1, "seed": 0,
                "max_length": 16, "sources": ["en"], "target": "de"}
        out = tmp_path / "xlrs.out"
        argv = ["xlrs", "--spec", json.dumps(spec), "--run-dir", str(run_of_copies(tmp_path, tiny_model_dir, [1])),
                "--model", str(tiny_model_dir), "--batch-size", "256", "--out", str(out)]
        monkeypatch.setattr(xlrs, "xlrs_rows", out_of_memory)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli.run({"decode": decode.main, "xlrs": xlrs.main}[stage])
    assert exited.value.code == 1 and not out.exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    where = "decoding at step 1" if stage == "decode" else "XLRS at step 0"
    assert error.startswith(f"error: {out}: {where}: out of GPU memory at {stage}.batch_size 256 (CUDA out of")
    assert error.endswith(f"free.); lower {stage}.batch_size in the config")


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    """A write the machine refuses (here: past a file-size limit, which Python turns into EFBIG, as a full disk
    gives ENOSPC) ends the job with a line naming the file, not a traceback."""
    import resource
    import subprocess
    import sys

    from conftest import REPO

    spec = {"task": "t", "kind": "generation", "lang": "en", "split": "test",
            "dataset": {"loader": "demo", "name": "title_generation", "sizes": {"test": 200}}}
    out = tmp_path / "data" / "test.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.prepare", "--spec", json.dumps(spec), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000)))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert re.search(r"error: \S*/data/test.jsonl: File too large; the file is over a size limit", result.stderr), \
        result.stderr
    assert not out.exists()


def test_a_checkpoint_save_on_a_full_disk_names_its_path(tiny_model_dir, tmp_path, monkeypatch):
    """safetensors and torch.save report a full disk with errors of their own, not OSError: with little space
    left, the save says which checkpoint and how much space there is; with space, a failure stays what it is."""
    import shutil
    from collections import namedtuple

    from workflow_scripts import files

    model, tokenizer = modeling.load_model(str(tiny_model_dir)), modeling.load_tokenizer(str(tiny_model_dir))

    def failing_save(*args, **kwargs):
        raise RuntimeError("file write failed")

    monkeypatch.setattr(type(model), "save_pretrained", failing_save)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 3 << 20))
    with pytest.raises(DataError, match=r"step-000010: cannot write \(file write failed\); 3 MiB left"):
        modeling.save_model(model, tokenizer, tmp_path / "checkpoints" / "step-000010")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 0, files.LOW_SPACE))
    with pytest.raises(RuntimeError, match="file write failed"):
        modeling.save_model(model, tokenizer, tmp_path / "checkpoints" / "step-000010")


def test_a_resume_state_save_on_a_full_disk_names_its_path(tiny_model_dir, tmp_path, monkeypatch):
    """The space is measured while the partial file still takes it: a 7 GB state can fill a disk that had more
    than the low-space mark free before the save."""
    import shutil
    from collections import namedtuple
    from pathlib import Path

    usage = namedtuple("usage", "total used free")

    def partial_write(state, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    def free_space(path):  # little left only while the partial file is there
        partial = any(Path(path).glob(".state.pt.*.tmp"))
        return usage(10 << 30, 10 << 30, (2 << 20) if partial else (8 << 30))

    model = modeling.load_model(str(tiny_model_dir))
    optimizer = torch.optim.AdamW(model.parameters())
    monkeypatch.setattr(torch, "save", partial_write)
    monkeypatch.setattr(shutil, "disk_usage", free_space)
    with pytest.raises(DataError, match=r"resume/state.pt: cannot write \(PytorchStreamWriter .*\); 2 MiB left"):
        finetune.save_state(tmp_path / "resume" / "state.pt", model, optimizer, 10, [])
    assert not list((tmp_path / "resume").iterdir())  # the partial file is gone


def test_repeated_ids_are_counted_and_named_in_the_log(tmp_path, caplog):
    write_splits(tmp_path, [*GOOD_POS, GOOD_POS[0], {**GOOD_POS[0], "id": "2"}])
    records, notes = prepare.prepare(prepare_spec(tmp_path, "test"))
    assert len(records) == 3 and notes["repeated_ids"] == 1
    assert re.search(r"split 'test' \(.*de/test.jsonl\): 1 id\(s\) repeat \(1\)", caplog.text)
    _, notes = prepare.prepare(prepare_spec(tmp_path, "test") | {"dataset": {"loader": "demo", "name": "pos",
                                                                                    "sizes": {"test": 5}}})
    assert "repeated_ids" not in notes


def test_a_loaders_message_naming_language_and_split_is_not_prefixed_with_them_again(tmp_path):
    with pytest.raises(DataError) as error:
        prepare.prepare(prepare_spec(tmp_path, "dev"))
    assert str(error.value).startswith("task 'pos': jsonl dataset ") and str(error.value).count("split 'dev'") == 1
