"""Real-data loaders on small fixture files in the upstream schemas, offline.

Fixtures are written the way the hub's files are: parquet written by `datasets` (so ClassLabel names
travel in the schema metadata), the hub's split names and config directories, PAWS-X "NS" rows,
TyDiQA ids with language prefixes, UDPOS rows in no particular order.
"""
import hashlib
import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402

from workflow_scripts import loaders  # noqa: E402
from workflow_scripts import tasks  # noqa: E402
from workflow_scripts.files import DataError  # noqa: E402

import datasets as hf  # noqa: E402  a pinned requirement: missing, these tests must fail, not skip
hf.disable_progress_bars()

UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]
TAG = {name: i for i, name in enumerate(UPOS)}


def write_parquet(path, columns: dict, features):
    path.parent.mkdir(parents=True, exist_ok=True)
    hf.Dataset.from_dict(columns, features=features).to_parquet(str(path))
    return path


def udpos_features():
    return hf.Features({"tokens": hf.Sequence(hf.Value("string")),
                        "pos_tags": hf.Sequence(hf.ClassLabel(names=UPOS))})


SENTENCES = [
    (["Der", "Hund", "bellt", "."], ["DET", "NOUN", "VERB", "PUNCT"]),
    (["Sie", "liest", "gern", "."], ["PRON", "VERB", "ADV", "PUNCT"]),
    (["Ein", "rotes", "Auto"], ["DET", "ADJ", "NOUN"]),
    (["Ja"], ["INTJ"]),
]


def write_udpos(root, config, split, sentences, tags_as=None):
    tags = [[TAG[t] for t in tags] if tags_as is None else [tags_as] * len(tags) for _, tags in sentences]
    return write_parquet(root / config / f"{split}-00000-of-00001.parquet",
                         {"tokens": [tokens for tokens, _ in sentences], "pos_tags": tags}, udpos_features())


def udpos_order(sentences):
    """The documented order: sha256 of the tokens and tags."""
    def key(item):
        text = "\x1f".join(item[0]) + "\x1e" + "\x1f".join(item[1])
        return hashlib.sha256(text.encode("utf-8")).hexdigest(), item[0], item[1]
    return sorted(sentences, key=key)


def xtreme(tmp_path, name, **extra):
    return {"loader": "xtreme", "name": name, "path": str(tmp_path / "xtreme"), "seed": 0, **extra}


# --------------------------------------------------------------------------------------------- udpos


def test_udpos_tags_are_upos_names_in_a_stable_order(tmp_path):
    write_udpos(tmp_path / "xtreme", "udpos.German", "train", SENTENCES)
    records, notes = loaders.load(xtreme(tmp_path, "udpos"), "de", "train")
    expected = [{"id": f"de-train-{n:06d}", "tokens": tokens, "tags": tags}
                for n, (tokens, tags) in enumerate(udpos_order(SENTENCES))]
    assert records == expected
    assert notes == {"upstream_split": "train"}
    assert [list(r) for r in records] == [["id", "tokens", "tags"]] * len(records)
    tasks.validate_records(tasks.kind("tagging"), records, "udpos")


def test_udpos_order_does_not_depend_on_file_order(tmp_path):
    write_udpos(tmp_path / "a" / "xtreme", "udpos.German", "train", SENTENCES)
    write_udpos(tmp_path / "b" / "xtreme", "udpos.German", "train", SENTENCES[::-1])
    first, _ = loaders.load(xtreme(tmp_path / "a", "udpos"), "de", "train")
    second, _ = loaders.load(xtreme(tmp_path / "b", "udpos"), "de", "train")
    assert first == second


def test_udpos_dev_is_the_hub_validation_split_and_sizes_cap(tmp_path):
    write_udpos(tmp_path / "xtreme", "udpos.English", "validation", SENTENCES)
    records, notes = loaders.load(xtreme(tmp_path, "udpos", sizes={"dev": 2}), "en", "dev")
    assert [r["tokens"] for r in records] == [t for t, _ in udpos_order(SENTENCES)[:2]]
    assert notes == {"upstream_split": "validation", "capped_from": 4}


def test_udpos_without_feature_metadata_uses_the_hub_tag_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "xtreme" / "udpos.French" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"tokens": [["Il", "pleut"]], "pos_tags": [[TAG["PRON"], TAG["VERB"]]]}), path)
    records, _ = loaders.load(xtreme(tmp_path, "udpos"), "fr", "test")
    assert records == [{"id": "fr-test-000000", "tokens": ["Il", "pleut"], "tags": ["PRON", "VERB"]}]


def test_udpos_unlabelled_test_split_is_refused(tmp_path):
    write_udpos(tmp_path / "xtreme", "udpos.German", "test", SENTENCES, tags_as=-1)
    with pytest.raises(DataError) as err:
        loaders.load(xtreme(tmp_path, "udpos"), "de", "test")
    message = str(err.value)
    assert "udpos" in message and "'test'" in message and "unlabelled" in message and "dataset.splits" in message


def test_udpos_wrong_schema_names_dataset_split_and_column(tmp_path):
    write_parquet(tmp_path / "xtreme" / "udpos.German" / "train-00000-of-00001.parquet",
                  {"tokens": [["a"]], "upos": [["X"]]},
                  hf.Features({"tokens": hf.Sequence(hf.Value("string")), "upos": hf.Sequence(hf.Value("string"))}))
    with pytest.raises(DataError) as err:
        loaders.load(xtreme(tmp_path, "udpos"), "de", "train")
    message = str(err.value)
    assert "'udpos'" in message and "split 'train'" in message and "pos_tags" in message


def test_udpos_unknown_language(tmp_path):
    with pytest.raises(DataError, match="no language 'xx'"):
        loaders.load(xtreme(tmp_path, "udpos"), "xx", "train")


# -------------------------------------------------------------------------------------------- PAWS-X


def pawsx_rows():
    # google/xtreme PAWS-X.*: label is a string column; translated dev/test hold "NS" placeholder rows.
    return {"sentence1": ["Der Hund schläft.", "NS", "Sie kam spät.", "Er lacht.", "Es regnet."],
            "sentence2": ["Der Hund ruht.", "NS", "NS", "Er weint.", "Es schneit."],
            "label": ["1", "0", "1", "0", "1"]}


def test_pawsx_ns_rows_are_dropped_and_counted(tmp_path):
    features = hf.Features({k: hf.Value("string") for k in ("sentence1", "sentence2", "label")})
    write_parquet(tmp_path / "xtreme" / "PAWS-X.de" / "validation-00000-of-00001.parquet", pawsx_rows(), features)
    records, notes = loaders.load(xtreme(tmp_path, "pawsx"), "de", "dev")
    assert records == [
        {"id": "validation-000000", "sentence1": "Der Hund schläft.", "sentence2": "Der Hund ruht.", "label": 1},
        {"id": "validation-000003", "sentence1": "Er lacht.", "sentence2": "Er weint.", "label": 0},
        {"id": "validation-000004", "sentence1": "Es regnet.", "sentence2": "Es schneit.", "label": 1},
    ]
    assert notes == {"upstream_split": "validation", "dropped_ns_placeholders": 2,
                     "ids_from_rows_of": str(tmp_path / "xtreme" / "PAWS-X.de" / "validation-00000-of-00001.parquet")}
    tasks.validate_records(tasks.kind("paraphrase"), records, "pawsx")


def test_pawsx_alternative_hub_repo_with_classlabel_and_ids(tmp_path):
    # google-research-datasets/paws-x: config per language, id column, label ClassLabel(names=["0", "1"]).
    features = hf.Features({"id": hf.Value("int32"), "sentence1": hf.Value("string"),
                            "sentence2": hf.Value("string"), "label": hf.ClassLabel(names=["0", "1"])})
    write_parquet(tmp_path / "xtreme" / "fr" / "test-00000-of-00001.parquet",
                  {"id": [7, 9, 11], "sentence1": ["a", "b", "c"], "sentence2": ["d", "e", "f"], "label": [1, -1, 0]},
                  features)
    declaration = xtreme(tmp_path, "pawsx", hub_id="google-research-datasets/paws-x")
    records, notes = loaders.load(declaration, "fr", "test")
    assert records == [{"id": "7", "sentence1": "a", "sentence2": "d", "label": 1},
                       {"id": "11", "sentence1": "c", "sentence2": "f", "label": 0}]
    assert notes == {"upstream_split": "test", "dropped_unlabelled": 1}


# -------------------------------------------------------------------------------------------- TyDiQA


def tydiqa_features():
    return hf.Features({"id": hf.Value("string"), "title": hf.Value("string"), "context": hf.Value("string"),
                        "question": hf.Value("string"),
                        "answers": hf.Sequence({"text": hf.Value("string"), "answer_start": hf.Value("int32")})})


def write_tydiqa(root, split):
    rows = {
        "id": ["english-1-0", "finnish-2-0", "finnish-3-1", "arabic-4-0", "finnish-5-0"],
        "title": ["A", "B", "C", "D", "E"],
        "context": ["Paris is in France.", "Helsinki on Suomen pääkaupunki.", "Oulu on kaupunki.",
                    "القاهرة عاصمة مصر", "Turku on vanha."],
        "question": ["Where is Paris?", "Mikä on pääkaupunki?", "Mikä Oulu on?", "ما عاصمة مصر؟", "Mikä Turku on?"],
        "answers": [{"text": ["France"], "answer_start": [12]},
                    {"text": ["Helsinki", "Helsinki", "Suomen pääkaupunki"], "answer_start": [0, 0, 12]},
                    {"text": ["kaupunki", "kaupunki"], "answer_start": [8, 8]},
                    {"text": ["القاهرة"], "answer_start": [0]},
                    {"text": ["vanha"], "answer_start": [3]}],  # a wrong offset upstream: the span is at 9
    }
    return write_parquet(root / "tydiqa" / f"{split}-00000-of-00001.parquet", rows, tydiqa_features())


def test_tydiqa_keeps_the_language_of_the_id_prefix(tmp_path):
    write_tydiqa(tmp_path / "xtreme", "train")
    records, notes = loaders.load(xtreme(tmp_path, "tydiqa"), "fi", "train")
    assert records == [
        {"id": "finnish-2-0", "context": "Helsinki on Suomen pääkaupunki.", "question": "Mikä on pääkaupunki?",
         "answer_text": "Helsinki", "answer_start": 0, "other_answers": ["Suomen pääkaupunki"]},
        {"id": "finnish-3-1", "context": "Oulu on kaupunki.", "question": "Mikä Oulu on?",
         "answer_text": "kaupunki", "answer_start": 8},
        {"id": "finnish-5-0", "context": "Turku on vanha.", "question": "Mikä Turku on?",
         "answer_text": "vanha", "answer_start": 9},
    ]
    assert notes == {"upstream_split": "train", "rows_other_languages": 2, "answer_start_fixed": 1}
    tasks.validate_records(tasks.kind("qa"), records, "tydiqa")
    # scored, as SQuAD is, against the best of every annotated answer
    assert tasks.kind("qa").score(["<extra_id_0>Suomen pääkaupunki"], records[:1])["exact_match"] == 100.0


def test_tydiqa_has_no_test_split_unless_mapped(tmp_path):
    write_tydiqa(tmp_path / "xtreme", "train")
    write_tydiqa(tmp_path / "xtreme", "validation")
    with pytest.raises(DataError) as err:
        loaders.load(xtreme(tmp_path, "tydiqa"), "fi", "test")
    message = str(err.value)
    assert "'tydiqa'" in message and "split 'test'" in message and "dataset.splits" in message
    mapped = xtreme(tmp_path, "tydiqa", splits={"test": "validation", "dev": "train[:1]", "train": "train[1:]"})
    test, notes = loaders.load(mapped, "fi", "test")
    assert [r["id"] for r in test] == ["finnish-2-0", "finnish-3-1", "finnish-5-0"]
    assert notes["upstream_split"] == "validation"
    assert [r["id"] for r in loaders.load(mapped, "fi", "dev")[0]] == ["finnish-2-0"]
    assert [r["id"] for r in loaders.load(mapped, "fi", "train")[0]] == ["finnish-3-1", "finnish-5-0"]


# ------------------------------------------------------------------------------------------ offline / missing


def test_missing_local_path_says_what_to_do(tmp_path):
    declaration = {"loader": "xtreme", "name": "udpos", "path": str(tmp_path / "nowhere")}
    with pytest.raises(DataError) as err:
        loaders.load(declaration, "de", "train")
    message = str(err.value)
    assert "'udpos'" in message and "split 'train'" in message and "dataset.path" in message and "HF_HOME" in message


def test_local_copy_without_the_split_lists_what_is_there(tmp_path):
    write_udpos(tmp_path / "xtreme", "udpos.German", "test", SENTENCES)
    with pytest.raises(DataError) as err:
        loaders.load(xtreme(tmp_path, "udpos"), "de", "train")
    assert "udpos.German/test-00000-of-00001.parquet" in str(err.value) and "dataset.splits" in str(err.value)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(hf.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.mark.parametrize("declaration", [
    {"loader": "xtreme", "name": "udpos"},
    {"loader": "xtreme", "name": "pawsx", "hub_id": "google-research-datasets/paws-x"},
    {"loader": "wiki_lingua"},
])
def test_offline_hub_says_what_to_do(offline, declaration):
    with pytest.raises(DataError) as err:
        loaders.load(declaration, "en", "dev")
    message = str(err.value)
    assert "split 'dev'" in message and "dataset.path" in message
    assert (declaration.get("name") or "GEM/wiki_lingua") in message
    # a load by file pattern (WikiLingua's parquet conversion) is not reloaded from the cache offline
    assert ("HF_HOME" in message) == (declaration["loader"] != "wiki_lingua")
    assert ("refs/convert/parquet" in message) == (declaration["loader"] == "wiki_lingua")


def test_hub_code_path_through_load_dataset(tmp_path, monkeypatch):
    """hub_id given, no path: datasets.load_dataset reads a repository (here a local one shaped like the hub's)."""
    monkeypatch.setattr(hf.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    repo = tmp_path / "repo"
    write_udpos(repo, "udpos.German", "train", SENTENCES)
    write_udpos(repo, "udpos.German", "validation", SENTENCES[:1])
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: udpos.German\n  data_files:\n  - split: train\n    path: udpos.German/train-*\n"
        "  - split: validation\n    path: udpos.German/validation-*\n---\n", encoding="utf-8")
    declaration = {"loader": "xtreme", "name": "udpos", "hub_id": str(repo)}
    local = xtreme(tmp_path / "copy", "udpos")
    write_udpos(tmp_path / "copy" / "xtreme", "udpos.German", "train", SENTENCES[::-1])
    assert loaders.load(declaration, "de", "train") == loaders.load(local, "de", "train")
    assert loaders.load(declaration, "de", "dev")[0] == [{"id": "de-validation-000000", "tokens": SENTENCES[0][0],
                                                          "tags": SENTENCES[0][1]}]
    with pytest.raises(DataError, match=r"split 'test'.*no split 'test'.*dataset.splits"):
        loaders.load(declaration, "de", "test")
    wiki = tmp_path / "wiki"  # the parquet export's layout, read file by file with data_files
    write_parquet(wiki / "de" / "test" / "0000.parquet", wiki_rows("test"), wiki_features())
    records, _ = loaders.load({"loader": "wiki_lingua", "hub_id": str(wiki)}, "de", "test")
    assert [r["id"] for r in records] == ["de-wikilingua_multilingual-test-0", "de-wikilingua_multilingual-test-3"]


# ---------------------------------------------------------------------------------------- wiki_lingua


def wiki_features():
    return hf.Features({name: hf.Value("string") for name in
                        ("gem_id", "gem_parent_id", "source_language", "target_language", "source", "target")}
                       | {"references": hf.Sequence(hf.Value("string"))})


def wiki_rows(split):
    return {"gem_id": [f"wikilingua_multilingual-{split}-{i}" for i in range(4)],
            "gem_parent_id": [f"p{i}" for i in range(4)],
            "source_language": ["de", "de", "en", "de"], "target_language": ["de", "en", "en", "de"],
            "source": ["Ein langer Text.", "Ein Text.", "An English text.", "Noch ein Text."],
            "target": ["Kurz.", "Short.", "Short.", "Knapp."],
            "references": [["Kurz."], ["Short."], ["Short."], ["Knapp."]]}


def test_wiki_lingua_keeps_same_language_rows(tmp_path):
    root = tmp_path / "wiki"
    write_parquet(root / "de" / "train" / "0000.parquet", wiki_rows("train"), wiki_features())
    write_parquet(root / "de" / "wiki_lingua-validation.parquet", wiki_rows("validation"), wiki_features())
    declaration = {"loader": "wiki_lingua", "path": str(root)}
    records, notes = loaders.load(declaration, "de", "train")
    assert records == [
        {"id": "de-wikilingua_multilingual-train-0", "document": "Ein langer Text.", "summary": "Kurz."},
        {"id": "de-wikilingua_multilingual-train-3", "document": "Noch ein Text.", "summary": "Knapp."},
    ]
    assert notes == {"upstream_split": "train", "rows_other_languages": 2}
    dev, _ = loaders.load(declaration, "de", "dev")  # the older export's file naming
    assert [r["id"] for r in dev] == ["de-wikilingua_multilingual-validation-0",
                                   "de-wikilingua_multilingual-validation-3"]
    tasks.validate_records(tasks.kind("generation"), records, "wiki_lingua")


def test_wiki_lingua_without_the_language_lists_the_pairs(tmp_path):
    root = tmp_path / "wiki"
    write_parquet(root / "fr" / "test" / "0000.parquet", wiki_rows("test"), wiki_features())
    with pytest.raises(DataError, match=r"no fr->fr rows .*de->de.*dataset.config"):
        loaders.load({"loader": "wiki_lingua", "path": str(root)}, "fr", "test")


def test_wiki_lingua_wrong_schema(tmp_path):
    rows = {"gem_id": ["x"], "text": ["t"], "summary": ["s"]}
    write_parquet(tmp_path / "wiki" / "de" / "test" / "0000.parquet", rows,
                  hf.Features({k: hf.Value("string") for k in rows}))
    with pytest.raises(DataError) as err:
        loaders.load({"loader": "wiki_lingua", "path": str(tmp_path / "wiki")}, "de", "test")
    message = str(err.value)
    assert "GEM/wiki_lingua" in message and "split 'test'" in message and "source_language" in message


# ---------------------------------------------------------------------------------------------- files


def test_files_tsv_with_a_column_mapping(tmp_path):
    path = tmp_path / "data" / "de" / "dev.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("idx\tstory\tending\tnote\n7\tEr ging \"nach\" Hause.\tEr schlief.\tx\n"
                    "8\tSie kochte.\tSie aß.\ty\n", encoding="utf-8")
    declaration = {"loader": "files", "path": str(tmp_path / "data" / "{lang}" / "{split}.tsv"),
                   "columns": {"id": "idx", "document": "story", "summary": "ending"}}
    records, notes = loaders.load(declaration, "de", "dev")
    assert records == [{"id": "7", "document": "Er ging \"nach\" Hause.", "summary": "Er schlief."},
                       {"id": "8", "document": "Sie kochte.", "summary": "Sie aß."}]
    assert notes == {"upstream_split": "dev", "file": "dev.tsv"}


@pytest.mark.parametrize("suffix, text", [("tsv", "document\tsummary\nText.\tTitel.\n"),
                                          ("csv", "document,summary\nText.,Titel.\n"),
                                          ("jsonl", '{"document": "Text.", "summary": "Titel."}\n')])
def test_files_saved_with_a_byte_order_mark_read_as_without(tmp_path, suffix, text):
    """Spreadsheet programs start UTF-8 files with a byte-order mark; it must not become part of the first column."""
    (tmp_path / f"de.dev.{suffix}").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    declaration = {"loader": "files", "path": str(tmp_path / f"{{lang}}.{{split}}.{suffix}")}
    records, _ = loaders.load(declaration, "de", "dev")
    assert records == [{"id": "dev-000000", "document": "Text.", "summary": "Titel."}]


def test_files_rows_with_an_empty_text_cell_are_dropped_and_counted(tmp_path):
    (tmp_path / "de.dev.tsv").write_text("document\tsummary\nText eins.\tTitel.\nText zwei.\t \n\tTitel.\n",
                                         encoding="utf-8")
    records, notes = loaders.load({"loader": "files", "path": str(tmp_path / "{lang}.{split}.tsv")}, "de", "dev")
    assert [r["id"] for r in records] == ["dev-000000"] and notes["dropped_empty"] == 2


def test_own_files_read_and_check_only_the_fields_of_the_task(tmp_path):
    """A column the task does not read (a QA field beside a summary) is left out, and an empty cell in it drops
    nothing: a title-generation row with no `context` note is a whole example."""
    from workflow_scripts.files import write_jsonl

    (tmp_path / "de.dev.tsv").write_text("document\tsummary\tcontext\nText eins.\tTitel.\t\nText zwei.\tZwei.\tNotiz\n",
                                         encoding="utf-8")
    write_jsonl(tmp_path / "de.dev.jsonl", [{"id": "1", "document": "d", "summary": "s", "question": ""}])
    fields = tasks.KINDS["generation"].fields
    records, notes = loaders.load({"loader": "files", "path": str(tmp_path / "{lang}.{split}.tsv")}, "de", "dev",
                                  fields)
    assert [sorted(r) for r in records] == [["document", "id", "summary"]] * 2 and "dropped_empty" not in notes
    records, notes = loaders.load({"loader": "jsonl", "path": str(tmp_path / "{lang}.{split}.jsonl")}, "de", "dev",
                                  fields)
    assert [r["id"] for r in records] == ["1"] and "dropped_empty" not in notes


@pytest.mark.parametrize("suffix, text, hint", [
    ("tsv", "document\tsummary\nText.\tTitel.\nText\tmit Tab.\tTitel.\n", "a tab inside a cell"),
    ("csv", "document,summary\nText.,Titel.\nText, mit Komma.,Titel.\n", "a comma inside a cell")], ids=["tsv", "csv"])
def test_files_a_row_with_more_fields_than_the_header_names_its_line(tmp_path, suffix, text, hint):
    """csv.DictReader files the extra fields under None: the row would load with its text cut."""
    (tmp_path / f"de.dev.{suffix}").write_text(text, encoding="utf-8")
    declaration = {"loader": "files", "path": str(tmp_path / f"{{lang}}.{{split}}.{suffix}")}
    with pytest.raises(DataError, match=rf"de\.dev\.{suffix}: line 3 has more fields than the header \({hint}"):
        loaders.load(declaration, "de", "dev")
    delimiter = "\t" if suffix == "tsv" else ","  # a line that only ends in a delimiter loses nothing
    (tmp_path / f"de.dev.{suffix}").write_text(f"document{delimiter}summary\nText.{delimiter}Titel.{delimiter}\n")
    assert loaders.load(declaration, "de", "dev")[0][0]["summary"] == "Titel."


def test_files_pawsx_ns_rows_are_dropped_and_counted_as_xtreme_does(tmp_path):
    """A local copy of PAWS-X's translated dev set, read as files: its "NS" rows go as they do from the hub."""
    rows = pawsx_rows()
    (tmp_path / "de.dev.tsv").write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{label}\n" for a, b, label in zip(rows["sentence1"], rows["sentence2"], rows["label"])),
        encoding="utf-8")
    records, notes = loaders.load({"loader": "files", "path": str(tmp_path / "{lang}.{split}.tsv")}, "de", "dev")
    assert [r["id"] for r in records] == ["dev-000000", "dev-000003", "dev-000004"]
    assert notes["dropped_ns_placeholders"] == 2


def test_files_csv_and_parquet_coerce_types(tmp_path):
    csv_path = tmp_path / "en-test.csv"
    csv_path.write_text('s1,s2,gold\n"Yes, it is.",It is.,1\nNo.,Maybe.,0\n', encoding="utf-8")
    declaration = {"loader": "files", "path": str(tmp_path / "{lang}-{split}.csv"),
                   "columns": {"sentence1": "s1", "sentence2": "s2", "label": "gold"}}
    records, _ = loaders.load(declaration, "en", "test")
    assert records == [{"id": "test-000000", "sentence1": "Yes, it is.", "sentence2": "It is.", "label": 1},
                       {"id": "test-000001", "sentence1": "No.", "sentence2": "Maybe.", "label": 0}]
    write_udpos(tmp_path / "pq", "de", "train", SENTENCES[:1])
    declaration = {"loader": "files", "path": str(tmp_path / "pq" / "{lang}" / "{split}-00000-of-00001.parquet"),
                   "columns": {"tags": "pos_tags"}}
    records, _ = loaders.load(declaration, "de", "train")
    assert records == [{"id": "train-000000", "tokens": SENTENCES[0][0], "tags": SENTENCES[0][1]}]


def test_files_missing_column_names_dataset_split_and_column(tmp_path):
    path = tmp_path / "de" / "train.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"text": "a", "title": "b"}) + "\n", encoding="utf-8")
    declaration = {"loader": "files", "name": "mytitles", "path": str(tmp_path / "{lang}" / "{split}.jsonl"),
                   "columns": {"document": "text", "summary": "headline"}}
    with pytest.raises(DataError) as err:
        loaders.load(declaration, "de", "train")
    message = str(err.value)
    assert "'mytitles'" in message and "split 'train'" in message and "'headline'" in message and "text" in message


@pytest.mark.parametrize("loader", ["files", "jsonl"])
def test_a_missing_file_names_the_keys_that_name_it(tmp_path, loader):
    """A dev file called validation.jsonl is found through dataset.splits: the error says so."""
    declaration = {"loader": loader, "path": str(tmp_path / "{lang}" / "{split}.jsonl")}
    with pytest.raises(DataError, match=r"split 'dev'.*de/dev.jsonl does not exist.*dataset.path.*"
                                        r"dataset.splits \(e.g. {dev: validation}\)"):
        loaders.load(declaration, "de", "dev")
    # where dataset.splits already names it, the error does not ask for what is there
    with pytest.raises(DataError, match=r"de/validation.jsonl does not exist") as caught:
        loaders.load({**declaration, "splits": {"dev": "validation"}}, "de", "dev")
    assert "dataset.splits" not in str(caught.value)


def test_a_missing_parallel_table_names_its_key(tmp_path):
    """xlrs.parallel with loader file is one table, not a template per language and split."""
    from workflow_scripts.xlrs import load_parallel

    with pytest.raises(DataError) as caught:
        load_parallel({"loader": "file", "path": str(tmp_path / "parallel.tsv")}, ["en", "de"], 4, 0)
    assert str(caught.value) == f"xlrs.parallel.path names {tmp_path / 'parallel.tsv'}, which does not exist"


# ------------------------------------------------------------------------------------------------ MTG


def write_lines(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_mtg_jsonl_per_language_with_ids_shared_across_languages(tmp_path):
    root = tmp_path / "MTG"
    write_lines(root / "SG" / "en" / "valid.jsonl", [{"context": "Tom woke up.", "ending": "He left."},
                                                     {"context": "Ann ate.", "ending": "She slept."}])
    write_lines(root / "SG" / "de" / "valid.jsonl", [{"context": "Tom wachte auf.", "ending": "Er ging."},
                                                     {"context": "Ann aß.", "ending": "Sie schlief."}])
    declaration = {"loader": "mtg", "name": "SG", "path": str(root)}
    en, notes = loaders.load(declaration, "en", "dev")
    de, _ = loaders.load(declaration, "de", "dev")
    assert de == [{"id": "dev-000000", "document": "Tom wachte auf.", "summary": "Er ging."},
                  {"id": "dev-000001", "document": "Ann aß.", "summary": "Sie schlief."}]
    assert [r["id"] for r in en] == [r["id"] for r in de]
    assert notes == {"upstream_split": "dev", "file": "valid.jsonl",
                     "ids_from_rows_of": str(root / "SG" / "en" / "valid.jsonl")}
    tasks.validate_records(tasks.kind("generation"), de, "mtg")


def test_mtg_task_folders_come_before_a_file_at_the_archive_root(tmp_path):
    """An archive holding both tasks and a file at its root: each task reads its own folder (the root was tried
    first and gave SG and TG the same examples), and the plan fingerprints the files the loader reads."""
    root = tmp_path / "MTG"
    for folder in ("", "SG", "TG"):
        write_lines(root / folder / "en" / "train.jsonl", [{"document": f"doc {folder}", "summary": f"sum {folder}"}])
    for name in ("SG", "TG"):
        declaration = {"loader": "mtg", "name": name, "path": str(root)}
        assert loaders.load(declaration, "en", "train")[0][0]["document"] == f"doc {name}"
        assert loaders.directory_files(declaration, "en", "train") == [root / name / "en" / "train.jsonl"]
    # dataset.path at the task folder itself: no task folder inside it, so its root is read
    assert loaders.load({"loader": "mtg", "name": "SG", "path": str(root / "SG")}, "en", "train")[0][0]["document"] \
        == "doc SG"


def test_mtg_json_list_file_template_and_columns(tmp_path):
    path = tmp_path / "TG" / "test.zh.json"
    path.parent.mkdir()
    path.write_text(json.dumps([{"uid": "a1", "body": "正文一", "headline": "标题一"}], ensure_ascii=False),
                    encoding="utf-8")
    declaration = {"loader": "mtg", "name": "TG", "path": str(tmp_path / "TG" / "{split}.{lang}.json"),
                   "columns": {"document": "body", "summary": "headline", "id": "uid"}}
    assert loaders.load(declaration, "zh", "test")[0] == [{"id": "a1", "document": "正文一", "summary": "标题一"}]


def test_an_mtg_file_template_finds_the_dev_set_under_its_aliases(tmp_path):
    """`{split}` in a template takes the names the directory layouts try too (valid, validation), unless
    dataset.splits names one."""
    path = tmp_path / "valid.de.jsonl"
    path.write_text(json.dumps({"id": "1", "document": "Text.", "summary": "Titel."}) + "\n", encoding="utf-8")
    declaration = {"loader": "mtg", "name": "TG", "path": str(tmp_path / "{split}.{lang}.jsonl")}
    assert [r["id"] for r in loaders.load(declaration, "de", "dev")[0]] == ["1"]
    with pytest.raises(DataError, match="no MTG data file"):
        loaders.load({**declaration, "splits": {"dev": "validation"}}, "de", "dev")


def test_mtg_line_aligned_source_target_files(tmp_path):
    (tmp_path / "fr").mkdir()
    (tmp_path / "fr" / "train.src").write_text("Un article.\nUn autre.\n", encoding="utf-8")
    (tmp_path / "fr" / "train.tgt").write_text("Titre.\nAutre titre.\n", encoding="utf-8")
    records, _ = loaders.load({"loader": "mtg", "name": "TG", "path": str(tmp_path)}, "fr", "train")
    assert records == [{"id": "train-000000", "document": "Un article.", "summary": "Titre."},
                       {"id": "train-000001", "document": "Un autre.", "summary": "Autre titre."}]


def test_mtg_one_json_per_split_keyed_by_language(tmp_path):
    (tmp_path / "SG").mkdir()
    (tmp_path / "SG" / "test.json").write_text(json.dumps(
        {"en": [{"source": "Bo ran.", "target": "He won."}], "es": [{"source": "Bo corrió.", "target": "Ganó."}]},
        ensure_ascii=False), encoding="utf-8")
    records, _ = loaders.load({"loader": "mtg", "name": "SG", "path": str(tmp_path)}, "es", "test")
    assert records == [{"id": "test-000000", "document": "Bo corrió.", "summary": "Ganó."}]
    with pytest.raises(DataError, match="no MTG data file"):
        loaders.load({"loader": "mtg", "name": "SG", "path": str(tmp_path)}, "de", "test")


def test_mtg_unknown_fields_say_what_was_expected_and_found(tmp_path):
    write_lines(tmp_path / "es" / "test.jsonl", [{"foo": "a", "bar": "b"}])
    with pytest.raises(DataError) as err:
        loaders.load({"loader": "mtg", "name": "SG", "path": str(tmp_path)}, "es", "test")
    message = str(err.value)
    assert "'SG'" in message and "split 'test'" in message and "bar, foo" in message
    assert "document field" in message and "dataset.columns" in message


def test_mtg_missing_files_list_the_layouts_tried(tmp_path):
    write_lines(tmp_path / "notes.jsonl", [{"a": 1}])
    with pytest.raises(DataError) as err:
        loaders.load({"loader": "mtg", "name": "SG", "path": str(tmp_path)}, "de", "train")
    message = str(err.value)
    assert "de/train.jsonl" in message and "notes.jsonl" in message and "dataset.path" in message


def test_mtg_needs_a_local_path():
    with pytest.raises(DataError, match="archive.*dataset.path"):
        loaders.load({"loader": "mtg", "name": "SG"}, "de", "train")


# ---------------------------------------------------------------------------------------------- module


def test_jsonl_reads_the_mapped_split_sliced_and_the_plan_knows_its_file(tmp_path):
    from workflow_scripts.files import write_jsonl

    write_jsonl(tmp_path / "de.train.jsonl", [{"id": str(i)} for i in range(5)])
    declaration = {"loader": "jsonl", "path": str(tmp_path / "{lang}.{split}.jsonl"),
                   "splits": {"test": "train[3:]"}, "sizes": {"test": 1}}
    records, _ = loaders.load(declaration, "de", "test")
    assert records == [{"id": "3"}]
    assert loaders.upstream_names(declaration, "test") == ("train",)
    assert loaders.upstream_names(declaration, "dev") == ("dev",)
    assert loaders.upstream_names({"loader": "mtg"}, "dev") == ("dev", "valid", "validation", "val")


def test_jsonl_drops_and_counts_records_with_an_empty_text(tmp_path):
    """An empty summary would be trained on as "stop at once" and score every output 0: dropped, as the other
    loaders drop it, before the size cap."""
    from workflow_scripts.files import write_jsonl

    write_jsonl(tmp_path / "en.test.jsonl", [{"id": "1", "document": "d", "summary": " "},
                                             {"id": "2", "document": "d", "summary": "s"},
                                             {"id": "3", "document": "", "summary": "s"},
                                             {"id": "4", "document": "d", "summary": "t"}])
    declaration = {"loader": "jsonl", "path": str(tmp_path / "{lang}.{split}.jsonl"), "sizes": {"test": 1}}
    records, notes = loaders.load(declaration, "en", "test")
    assert [r["id"] for r in records] == ["2"] and notes["dropped_empty"] == 2


def test_unknown_loader_is_a_data_error():
    with pytest.raises(DataError, match="cannot load task data"):
        loaders.load({"loader": "file", "path": "x.tsv"}, "en", "train")


def test_import_pulls_in_no_heavy_library():
    code = ("import sys; import workflow_scripts.loaders, workflow_scripts.prepare; "
            "print(sorted(m for m in ('datasets', 'pyarrow', 'pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "[]"


def test_a_tydiqa_answer_without_its_start_is_unlabelled_not_a_crash():
    from workflow_scripts.loaders import xtreme as xtreme_loader

    row = {"id": "english-1", "context": "It is 42.", "question": "What?", "answers": {"text": ["42"],
                                                                                       "answer_start": []}}
    assert xtreme_loader._tydiqa_example(row)[1] == "unlabelled"
