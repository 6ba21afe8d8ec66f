"""XLRS (paper §4): exact values and invariants on the tiny built model."""
import pytest
import torch

from workflow_scripts import modeling, xlrs

SENTENCES = {
    "en": ["The small dog sees the red ball.", "A girl reads.", "The old farmer buys fresh bread in the market today."],
    "de": ["Der kleine Hund sieht den roten Ball.", "Ein Mädchen liest.", "Der alte Bauer kauft heute frisches Brot."],
    "zh": ["小狗看见红色的球。", "女孩读书。", "老农民今天在市场上买新鲜的面包。"],
}


def encode(model, tokenizer, sentences, batch_size, max_length=64):
    ids, _ = modeling.tokenize(tokenizer, sentences, max_length)
    return xlrs.encode(model, ids, tokenizer.pad_token_id, batch_size, max_length)


def xlrs_rows(model, tokenizer, parallel, sources, targets, step, batch_size=2, max_length=64):
    return xlrs.xlrs_rows(model, tokenizer.pad_token_id, xlrs.tokenize_parallel(tokenizer, parallel, max_length),
                          sources, targets, step, batch_size, max_length)


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return (modeling.load_model(str(tiny_model_dir), device=torch.device("cpu")).eval(),
            modeling.load_tokenizer(str(tiny_model_dir)))


def test_a_sentence_with_itself_is_one(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    vectors = encode(model, tokenizer, SENTENCES["en"], batch_size=2)
    assert xlrs.similarity(vectors, vectors) == pytest.approx([1.0] * vectors.shape[0], abs=1e-6)


def test_padding_and_batch_size_do_not_change_the_vectors(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    alone = torch.cat([encode(model, tokenizer, [s], batch_size=1) for s in SENTENCES["de"]], dim=1)
    batched = encode(model, tokenizer, SENTENCES["de"], batch_size=3)
    assert torch.allclose(alone, batched, atol=1e-5)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert xlrs.mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_one_value_per_source_and_layer(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rows = xlrs_rows(model, tokenizer, SENTENCES, sources=["en", "zh"], targets=["de", "zh"], step=7)
    layers = model.config.num_layers + 1
    assert {(r["source"], r["target"]) for r in rows} == {("en", "de"), ("zh", "de"), ("en", "zh")}
    assert len(rows) == 3 * layers
    assert sum(r["last_layer"] for r in rows) == 3
    assert all(r["step"] == 7 and r["n_pairs"] == 3 and -1 <= r["xlrs"] <= 1 for r in rows)


def test_last_layer_value_is_the_papers_definition(model_and_tokenizer):
    """§4: the mean over pairs of the cosine of each pair's mean-pooled final encoder states, computed here by hand,
    one sentence at a time (no padding), and not the cosine of the mean vectors (this sample tells them apart)."""
    model, tokenizer = model_and_tokenizer
    pooled = {}
    for lang in ("en", "zh"):
        vectors = []
        for sentence in SENTENCES[lang]:
            ids = torch.tensor([tokenizer(sentence)["input_ids"]])
            with torch.no_grad():
                vectors.append(model.encoder(input_ids=ids).last_hidden_state[0].mean(0))
        pooled[lang] = torch.stack(vectors)
    expected = torch.nn.functional.cosine_similarity(pooled["en"], pooled["zh"], dim=-1).mean().item()
    of_means = torch.nn.functional.cosine_similarity(pooled["en"].mean(0), pooled["zh"].mean(0), dim=0).item()
    assert abs(expected - of_means) > 1e-3
    rows = xlrs_rows(model, tokenizer, SENTENCES, sources=["en"], targets=["zh"], step=0, batch_size=3)
    (last,) = [r for r in rows if r["last_layer"]]
    assert last["layer"] == model.config.num_layers
    assert last["xlrs"] == pytest.approx(expected, abs=1e-6)


def test_parallel_sample_is_the_same_whichever_languages_are_asked():
    declaration = {"loader": "demo", "name": "parallel", "sizes": {"test": 50}}
    with_de = xlrs.load_parallel(declaration, ["en", "de"], n_pairs=10, seed=0)
    with_zh = xlrs.load_parallel(declaration, ["en", "zh"], n_pairs=10, seed=0)
    assert with_de["en"] == with_zh["en"] and len(with_de["de"]) == 10


def test_more_demo_sentences_than_the_corpus_holds_is_a_data_error():
    from workflow_scripts.files import DataError

    with pytest.raises(DataError, match=r"xlrs.parallel \(demo corpus\): n=100000 exceeds .*lower xlrs.parallel"):
        xlrs.load_parallel({"loader": "demo", "sizes": {"test": 100000}}, ["en", "de"], 8, 0)


def test_rows_a_target_lacks_change_no_other_sentence_of_the_sample(tmp_path):
    """FR lacks every third row: the EN-FR sample replaces those rows only and shares every other one with EN-DE's."""
    path = tmp_path / "pairs.tsv"
    rows = [f"en {i}\tde {i}\t{'' if i % 3 == 0 else f'fr {i}'}" for i in range(60)]
    path.write_text("en\tde\tfr\n" + "\n".join(rows) + "\n", encoding="utf-8")
    declaration = {"loader": "file", "path": str(path)}
    with_de = xlrs.load_parallel(declaration, ["en", "de"], n_pairs=12, seed=3)["en"]
    with_fr = xlrs.load_parallel(declaration, ["en", "fr"], n_pairs=12, seed=3)["en"]
    kept = [s for s in with_de if int(s.split()[1]) % 3]
    assert len(with_fr) == 12 and set(kept) <= set(with_fr) and len(kept) < 12
    assert with_de != xlrs.load_parallel(declaration, ["en", "de"], n_pairs=12, seed=4)["en"]


def test_parallel_file_with_a_column_per_language(tmp_path, caplog):
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tde\nOne.\tEins.\nTwo.\tZwei.\n", encoding="utf-8")
    pairs = xlrs.load_parallel({"loader": "file", "path": str(path)}, ["en", "de"], n_pairs=5, seed=0)
    assert pairs == {"en": ["One.", "Two."], "de": ["Eins.", "Zwei."]}
    assert "2 rows have a sentence in every one of en, de, fewer than xlrs.n_pairs 5" in caplog.text


def test_a_target_without_parallel_sentences_is_named(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tde\nOne.\tEins.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.tsv: no column for language 'fr'"):
        xlrs.load_parallel({"loader": "file", "path": str(path)}, ["en", "fr"], n_pairs=5, seed=0)


def test_a_parallel_file_row_with_more_fields_than_the_header_is_named(tmp_path):
    """A tab inside a sentence used to shift the row's German into an ignored column and keep the half before it."""
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tde\nOne.\tEins.\nTwo,\tthree.\tZwei, drei.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.tsv: line 3 has more fields than the header"):
        xlrs.load_parallel({"loader": "file", "path": str(path)}, ["en", "de"], n_pairs=5, seed=0)


def test_an_empty_file_or_no_complete_row_is_named(tmp_path):
    empty, holes = tmp_path / "empty.tsv", tmp_path / "holes.tsv"
    empty.write_text("en\tde\n", encoding="utf-8")
    holes.write_text("en\tde\nOne.\t\n\tZwei.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty.tsv: empty, no parallel sentences"):
        xlrs.load_parallel({"loader": "file", "path": str(empty)}, ["en", "de"], n_pairs=5, seed=0)
    with pytest.raises(ValueError, match=r"no row has a sentence in every one of en, de"):
        xlrs.load_parallel({"loader": "file", "path": str(holes)}, ["en", "de"], n_pairs=5, seed=0)


def write_files(root, lang, rows):
    (root / f"{lang}.test.tsv").write_text("document\tsummary\n" + "".join(f"{row}\tx\n" for row in rows),
                                          encoding="utf-8")


def test_row_number_ids_need_every_language_to_have_the_same_rows(tmp_path):
    """Ids made of row numbers: FR's missing third line paired every later English sentence with the wrong
    translation. A row the loader drops (an empty cell) keeps its number and counts."""
    write_files(tmp_path, "en", [f"en {i}" for i in range(5)])
    write_files(tmp_path, "fr", [f"fr {i}" for i in range(5) if i != 2])
    declaration = {"loader": "files", "path": str(tmp_path / "{lang}.{split}.tsv")}
    with pytest.raises(ValueError, match=r"ids are row numbers.*en: \S*en.test.tsv has 5 rows, "
                                         r"fr: \S*fr.test.tsv has 4 rows"):
        xlrs.load_parallel(declaration, ["en", "fr"], n_pairs=5, seed=0)
    write_files(tmp_path, "fr", [f"fr {i}" if i != 2 else " " for i in range(5)])
    pairs = xlrs.load_parallel(declaration, ["en", "fr"], n_pairs=5, seed=0)
    assert [s.split()[1] for s in pairs["en"]] == [s.split()[1] for s in pairs["fr"]] == ["0", "1", "3", "4"]


def test_ids_read_from_the_files_pair_languages_whatever_their_row_counts(tmp_path):
    (tmp_path / "en").mkdir(), (tmp_path / "fr").mkdir()
    (tmp_path / "en" / "test.jsonl").write_text("".join(
        f'{{"id": "{i}", "document": "en {i}", "summary": "x"}}\n' for i in range(3)), encoding="utf-8")
    (tmp_path / "fr" / "test.jsonl").write_text('{"id": "2", "document": "fr 2", "summary": "x"}\n', encoding="utf-8")
    pairs = xlrs.load_parallel({"loader": "mtg", "path": str(tmp_path)}, ["en", "fr"], n_pairs=5, seed=0)
    assert pairs == {"en": ["en 2"], "fr": ["fr 2"]}


def test_each_checkpoint_gives_what_a_fresh_load_of_it_gives(tiny_model_dir, tmp_path, monkeypatch):
    """The command reuses one model and reads only each later checkpoint's encoder into it, and tokenizes each
    language once; every step's rows must still be those of that checkpoint loaded on its own."""
    import json
    import sys

    import pandas as pd

    from workflow_scripts import cli

    tokenizer = modeling.load_tokenizer(str(tiny_model_dir))
    run_dir = tmp_path / "run"
    for step, scale in ((1, 0.5), (2, 0.25)):
        model = modeling.load_model(str(tiny_model_dir), device=torch.device("cpu"))
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.mul_(scale).add_(0.01 * step)
        modeling.save_model(model, tokenizer, run_dir / "checkpoints" / f"step-{step:06d}", dtype=torch.bfloat16)
    (run_dir / "run.json").write_text(json.dumps({"checkpoints": [1, 2]}))
    pd.DataFrame(SENTENCES).to_csv(tmp_path / "parallel.csv", index=False)
    spec = {"parallel": {"loader": "file", "path": str(tmp_path / "parallel.csv")}, "n_pairs": 3, "seed": 0,
            "max_length": 64, "sources": ["en"], "target": "de"}
    out = tmp_path / "xlrs.tsv"
    monkeypatch.setattr(sys, "argv", ["xlrs", "--spec", json.dumps(spec), "--run-dir", str(run_dir), "--model",
                                      str(tiny_model_dir), "--targets", "de", "zh", "--batch-size", "2", "--out",
                                      str(out)])
    calls, real_tokenize = [], modeling.tokenize
    monkeypatch.setattr(modeling, "tokenize", lambda *args: calls.append(args[1]) or real_tokenize(*args))
    cli.run(xlrs.main)
    assert sorted(calls) == sorted(SENTENCES.values())  # each language once, not once per checkpoint
    monkeypatch.undo()
    found = pd.read_csv(out, sep="\t")
    parallel = xlrs.load_parallel(spec["parallel"], ["en", "de", "zh"], 3, 0)
    for step, ref in xlrs.checkpoints_of(run_dir, str(tiny_model_dir)):
        fresh = modeling.load_model(ref, device=torch.device("cpu")).eval()
        expected = pd.DataFrame(xlrs_rows(fresh, tokenizer, parallel, ["en"], ["de", "zh"], step))
        at_step = found[found.step == step].reset_index(drop=True)
        assert len(at_step) == len(expected) > 0
        assert at_step.xlrs.tolist() == pytest.approx(expected.xlrs.tolist(), abs=1e-6), step
    assert found.groupby("step").xlrs.sum().nunique() == 3  # the three steps differ


def test_repeated_ids_cannot_pair_sentences(tmp_path):
    """Two French records with id 1: pairing kept whichever came last, silently."""
    for lang, ids in (("en", "012"), ("fr", "011")):
        (tmp_path / lang).mkdir()
        lines = [f'{{"id": "{i}", "document": "{lang} {n}", "summary": "x"}}\n' for n, i in enumerate(ids)]
        (tmp_path / lang / "test.jsonl").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=r"ids repeat in language 'fr', split 'test' \(1\)"):
        xlrs.load_parallel({"loader": "mtg", "path": str(tmp_path)}, ["en", "fr"], n_pairs=5, seed=0)
